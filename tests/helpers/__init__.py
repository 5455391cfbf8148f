"""Helpers the tests share: servers, processes, lab2 runs, the browser, constructed grids. No test
module imports another; each imports what it needs from here."""
