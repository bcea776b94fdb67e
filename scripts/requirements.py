"""Print the container requirements (base dependencies plus the `ua` extra) from pyproject.toml."""

import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
for req in [*project["dependencies"], *project["optional-dependencies"]["ua"]]:
    print(req)
# Built from its sdist by scripts/build-nfqueue-wheel.sh (no wheel on PyPI); containers only.
print("NetfilterQueue==1.1.0")
