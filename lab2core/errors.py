"""The error lab2 raises for input it cannot use."""


class InputError(ValueError):
    """Input that lab2 cannot use; the message says what was wrong and what is allowed."""
