"""The `lab2` command line, the temporary Prefect API it starts, and the local stack it supervises."""
