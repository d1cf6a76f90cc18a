"""What ``pip install edgefer`` asks for on each platform: LiteRT only where it has wheels."""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def litert_requirement() -> Requirement:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [r for r in map(Requirement, deps) if r.name == "ai-edge-litert"]
    return req


# (sys_platform, platform_machine, whether ai-edge-litert >= 1.2 has a wheel there), from the
# files of ai-edge-litert 2.3.0 (cp311-cp314: manylinux_2_27 x86_64 and aarch64,
# macosx_12_0_arm64, win_amd64); Intel Macs have only 1.0.0 and 1.0.1 (cp311).
PLATFORMS = [
    ("linux", "x86_64", True),
    ("linux", "aarch64", True),  # 64-bit Pi OS (and 32-bit Pi OS on a 64-bit kernel: README)
    ("darwin", "arm64", True),
    ("win32", "AMD64", True),
    ("darwin", "x86_64", False),  # was asked for: `pip install .` failed on an Intel Mac
    ("win32", "ARM64", False),
    ("linux", "armv7l", False),  # 32-bit Pi OS: tflite-runtime instead
]


@pytest.mark.parametrize(("system", "machine", "has_wheel"), PLATFORMS)
def test_litert_is_required_only_where_pip_can_install_it(system, machine, has_wheel):
    # Where it has no wheel, requiring it makes `pip install edgefer` fail ("Could not find a
    # version that satisfies the requirement ai-edge-litert>=1.2"), so edgefer is not
    # installed at all; without it, edgefer installs and says which runtime to add.
    marker = litert_requirement().marker
    assert marker.evaluate({"sys_platform": system, "platform_machine": machine}) is has_wheel


def test_the_declared_licence_covers_every_licence_the_wheel_ships():
    # The wheel declared "MIT" while it ships MediaPipe's Apache-2.0 BlazeFace model (its
    # licence text beside it): a licence scanner on a user's device read it as MIT only.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    shipped = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "edgefer").rglob("LICENSE*") if p.is_file()
    )
    assert shipped == ["edgefer/detectors/LICENSE-mediapipe"]
    assert project["license"] == "MIT AND Apache-2.0"
    assert project["license-files"] == ["LICENSE", *shipped]
