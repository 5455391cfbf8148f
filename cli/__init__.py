"""The `lab2` command line, the temporary Prefect API it starts, and the local stack it
supervises."""

from lab2.tasks import prefect_defaults

prefect_defaults()  # before the command line imports Prefect
