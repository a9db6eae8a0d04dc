"""
Structured log events and their JSON form.
"""
