"""Shared domain logic, pure and free of I/O: business time, deadlines, references,
text folding. Imports no other part of Switchboard."""
