"""Loads the Airbyte CDK's pytest hooks for its standard connector test suite."""

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]
