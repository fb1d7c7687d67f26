"""The one native part of RecoMind: the bus form's decoder (ADR 0012).

Everything else is in pyproject.toml. The extension is optional: where no C compiler is found,
the install goes on without it and `event_columns.decode_columns` uses Arrow's JSON reader.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "recomind.domain._busform",
            ["src/recomind/domain/_busform.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
