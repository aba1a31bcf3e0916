"""source-usage: an Airbyte source (and Singer tap) for usage and cost data from network and IoT vendors."""

from setuptools import find_packages, setup

VERSION = "0.1.0"

setup(
    name="source-usage",
    version=VERSION,
    description="Airbyte source for usage and cost data from Cisco Meraki, Twilio Super SIM, emnify and ThousandEyes",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["source_usage", "source_usage.*"]),
    package_data={"source_usage": ["schemas/*.json"]},
    include_package_data=True,
    install_requires=[
        "airbyte-cdk>=7.39,<7.40",  # the minor range the CDK contract tests (unit_tests/framework/test_cdk_contract.py) pass on
        "requests>=2.31,<3",
        "jsonschema>=4.17,<5",
        "pendulum>=3,<4",
        # Compiles each stream's JSON schema to Python: validating every record costs ~4 us instead of ~100 us.
        "fastjsonschema>=2.19,<3",
    ],
    extras_require={
        # xdist: `make test` runs the suite on 2 workers; timeout: a hung test fails with a traceback (pytest.ini).
        "test": ["pytest>=8,<10", "requests-mock>=1.11,<2", "pytest-xdist>=3.6,<4", "pytest-timeout>=2.3,<3"],
        "demo": ["airbyte>=0.71,<0.72"],
        # `make mutate`: mutation testing (mutation/mutate.py). Installed next to the demo extra, pip picks a
        # textual that accepts the rich PyAirbyte 0.71 pins (rich<14).
        "mutate": ["mutmut==3.8.1"],
    },
    entry_points={
        "console_scripts": [
            "source-usage=source_usage.console:airbyte_main",
            "tap-usage=source_usage.console:singer_main",
            "source-usage-sandbox=source_usage.emulator.cli:main",
            "source-usage-demo=source_usage.demo:main",
        ],
        # Vendor plugins: a third-party package registers its own VendorPlugin instance here the same way.
        "source_usage.vendors": [
            "meraki=source_usage.vendors.meraki:plugin",
            "twilio=source_usage.vendors.twilio:plugin",
            "emnify=source_usage.vendors.emnify:plugin",
            "thousandeyes=source_usage.vendors.thousandeyes:plugin",
        ],
    },
)
