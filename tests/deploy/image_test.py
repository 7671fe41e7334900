#!/usr/bin/python3
"""The Dockerfile, checked without a container engine (none on the build machines).

- The runtime stage installs exactly the Debian packages of the shared libraries `ldd` reports for the built agent
  and runner, in both directions: every library's package (`dpkg -S`) is installed or in the base image, and every
  installed package provides one of them, but for the allow-lists below;
- the build stage installs through scripts/install-deps.sh only; the runtime stage runs the agent as a non-root
  user.

Run by ctest (image_test) with Debian's /usr/bin/python3. FNA_AGENT_BIN, FNA_RUNNER_BIN: the built binaries (the
same shared libraries as the image's Release build).
"""

import os
import re
import subprocess
import unittest

from deploy_testing import REPO

# In debian:12-slim already: the C and C++ runtimes.
BASE_IMAGE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
# Installed for something other than a linked library: the CA bundle for outbound TLS.
NOT_LIBRARIES = {"ca-certificates"}


def stages(path):
    """[(FROM line, [instructions])], comment lines dropped and continuation lines joined, as docker reads them."""
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if not line.lstrip().startswith("#")]
    instructions, current = [], ""
    for line in lines:
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            instructions.append(" ".join(current.split()))
        current = ""
    result = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            result.append((instruction, []))
        elif result:
            result[-1][1].append(instruction)
    return result


def installed_packages(instructions):
    packages = set()
    for instruction in instructions:
        for command in re.findall(r"apt-get install ([^&;]*)", instruction):
            packages.update(t for t in command.split() if not t.startswith("-"))
    return packages


def linked_libraries(binary):
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    if "not found" in output:
        raise AssertionError(f"{binary}: unresolved libraries:\n{output}")
    return set(re.findall(r"=> (/\S+)", output)) | set(re.findall(r"^\s*(/\S+) \(", output, re.MULTILINE))


def packages_of(libraries):
    """{library: the Debian package shipping it}, each tried as given, resolved, and across the /lib -> /usr/lib
    merge, in one dpkg query."""
    candidates = {}
    for library in libraries:
        real = os.path.realpath(library)
        candidates[library] = [library, real, re.sub(r"^/usr/lib", "/lib", real), re.sub(r"^/lib", "/usr/lib", library)]
    paths = sorted({c for cs in candidates.values() for c in cs})
    output = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True, check=False).stdout
    owner = {}
    for line in output.splitlines():
        package, _, path = line.partition(": ")
        owner[path] = package.split(":")[0]
    result = {}
    for library, cs in candidates.items():
        found = [owner[c] for c in cs if c in owner]
        if not found:
            raise AssertionError(f"no Debian package ships {library}")
        result[library] = found[0]
    return result


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = stages(os.path.join(REPO, "Dockerfile"))
        cls.binaries = [os.environ["FNA_AGENT_BIN"], os.environ["FNA_RUNNER_BIN"]]

    def test_runtime_packages_are_exactly_the_linked_libraries(self):
        frm, runtime = self.stages[-1]
        self.assertEqual(frm, "FROM debian:12-slim")
        listed = installed_packages(runtime)
        libraries = set().union(*(linked_libraries(b) for b in self.binaries))
        needed = {}
        for library, package in sorted(packages_of(libraries).items()):
            needed.setdefault(package, []).append(os.path.basename(library))
        missing = set(needed) - listed - BASE_IMAGE_PACKAGES
        self.assertEqual(missing, set(), "libraries of packages the runtime stage does not install: "
                         + ", ".join(f"{p} ({', '.join(needed[p])})" for p in sorted(missing)))
        unneeded = listed - set(needed) - NOT_LIBRARIES
        self.assertEqual(unneeded, set(), "packages the runtime stage installs that provide no linked library")
        self.assertLessEqual(NOT_LIBRARIES, listed)
        self.assertIn("libcpp-httplib0.11", listed)

    def test_build_stage_installs_through_the_projects_script(self):
        frm, build = self.stages[0]
        self.assertEqual(frm, "FROM debian:12 AS build")
        self.assertIn("COPY scripts/install-deps.sh scripts/install-deps.sh", build)
        self.assertTrue(any(re.match(r"RUN (bash )?scripts/install-deps\.sh", i) for i in build), build)
        self.assertEqual(installed_packages(build), set(), "the build stage installs packages itself")
        self.assertTrue(any("-DCMAKE_BUILD_TYPE=Release" in i for i in build))

    def test_runtime_stage_runs_the_agent_as_non_root(self):
        _, runtime = self.stages[-1]
        self.assertIn("COPY --from=build /build/bin/flyte-neptune-agent /build/bin/flyte-neptune-runner "
                      "/usr/local/bin/", runtime)
        self.assertIn("USER 65532:65532", runtime)
        self.assertIn('ENTRYPOINT ["/usr/local/bin/flyte-neptune-agent"]', runtime)
        self.assertLess(runtime.index("USER 65532:65532"),
                        next(i for i, x in enumerate(runtime) if x.startswith("ENTRYPOINT")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
