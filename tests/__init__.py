"""
Trial tests for spc: one module per spc module, plus end-to-end suites.
"""
