"""Embedded servers and the process supervisor behind `awfdrs up` and the test suite."""
