"""Packaging lives in setup.cfg; this file lets older pip versions install in place."""

from setuptools import setup

setup()
