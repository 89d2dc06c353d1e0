"""Print the project's pinned requirements (core + every extra) from pyproject.toml.

The Makefile installs these into the virtual environment instead of installing the project
itself: the code runs from the checkout via PYTHONPATH, so one cached environment can serve
many clones (CI keys the cache on pyproject.toml's hash).
"""

import pathlib
import tomllib

project = tomllib.loads(pathlib.Path(__file__).parents[1].joinpath("pyproject.toml").read_text())["project"]
requirements = list(project["dependencies"])
for extra in project.get("optional-dependencies", {}).values():
    requirements += extra
print("\n".join(requirements))
