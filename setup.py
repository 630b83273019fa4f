"""Build the one optional native part: the hub's fan-out loop (src/tidings/push/_fanout.c).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler
the build goes on without it, and tidings.push.fanout uses its pure-Python loop.
Every install builds it, the core's too: a wheel is the same whatever extras
are asked for (extras choose dependencies, not what is built), it compiles in
about a second, and nothing outside the push server imports it.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tidings.push._fanout",
            ["src/tidings/push/_fanout.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
