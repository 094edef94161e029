"""The PEP 517 build backend of weft's Python package (pyproject.toml names it).

It configures and builds the extension with CMake for the interpreter that runs it (the
WEFT_PYTHON option, python/CMakeLists.txt) and writes the wheel itself: the standard
library's zipfile, hashlib and base64 are all it needs, so `pip install .` works with no
setuptools, no wheel package and no package index.

config_settings (pip install . --config-settings KEY=VALUE):
    build-dir   reuse this CMake build directory (default: a fresh temporary one)
    jobs        parallel build jobs (default 2)
    cmake       the cmake executable (default: cmake on PATH)
"""

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

NAME = "weft"
VERSION = "0.1.0"
SUMMARY = "queue's queues and threading's primitives on the weft C++ library"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _tag():
    impl = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    abi = impl + getattr(sys, "abiflags", "")
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{impl}-{abi}-{plat}"


def _metadata():
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\nSummary: {SUMMARY}\n"
            "Requires-Python: >=3.11\n")


def _dist_info_files():
    wheel = (f"Wheel-Version: 1.0\nGenerator: weft_build_backend {VERSION}\n"
             f"Root-Is-Purelib: false\nTag: {_tag()}\n")
    return {"METADATA": _metadata(), "WHEEL": wheel}


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = f"{NAME}-{VERSION}.dist-info"
    d = os.path.join(metadata_directory, name)
    os.makedirs(d, exist_ok=True)
    for fname, text in _dist_info_files().items():
        with open(os.path.join(d, fname), "w") as f:
            f.write(text)
    return name


def _run(cmd):
    print("weft_build_backend:", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def _build(config_settings, build_dir):
    cs = config_settings or {}
    cmake = cs.get("cmake") or shutil.which("cmake")
    if not cmake:
        raise RuntimeError("weft: cmake (>= 3.25) is needed to build the package")
    out_dir = os.path.join(build_dir, "out")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run([cmake, "-S", ROOT, "-B", build_dir, *gen, "-DCMAKE_BUILD_TYPE=Release",
          "-DWEFT_PYTHON=ON", f"-DWEFT_PYTHON_INTERPRETERS={sys.executable}",
          f"-DWEFT_PYTHON_OUTPUT_DIR={out_dir}", "-DWEFT_BUILD_TESTS=OFF",
          "-DWEFT_BUILD_EXAMPLES=OFF", "-DWEFT_INSTALL=OFF", "-DWEFT_WERROR=OFF",
          "-DWEFT_SANITIZE="])
    target = f"weft_python{sys.version_info[0]}{sys.version_info[1]}"
    _run([cmake, "--build", build_dir, "--target", target, "-j", str(cs.get("jobs", "2"))])
    return os.path.join(out_dir, NAME)


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    build_dir = (config_settings or {}).get("build-dir")
    if build_dir:
        return _write_wheel(wheel_directory, _build(config_settings, build_dir))
    with tempfile.TemporaryDirectory(prefix="weft-build-") as tmp:
        return _write_wheel(wheel_directory, _build(config_settings, tmp))


def _write_wheel(wheel_directory, pkg):
    wheel_name = f"{NAME}-{VERSION}-{_tag()}.whl"
    dist_info = f"{NAME}-{VERSION}.dist-info"
    records = []
    path = os.path.join(wheel_directory, wheel_name)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for base, dirs, files in os.walk(pkg):
            dirs.sort()
            for fname in sorted(files):
                if fname.endswith(".pyc"):
                    continue
                full = os.path.join(base, fname)
                arc = os.path.join(NAME, os.path.relpath(full, pkg)).replace(os.sep, "/")
                with open(full, "rb") as f:
                    data = f.read()
                zf.writestr(arc, data)
                records.append(_record_line(arc, data))
        for fname, text in _dist_info_files().items():
            arc = f"{dist_info}/{fname}"
            zf.writestr(arc, text)
            records.append(_record_line(arc, text.encode()))
        records.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    import tarfile
    name = f"{NAME}-{VERSION}"
    path = os.path.join(sdist_directory, f"{name}.tar.gz")
    files = subprocess.run(["git", "-C", ROOT, "ls-files"], check=True, capture_output=True,
                           text=True).stdout.split()
    with tarfile.open(path, "w:gz") as tf:
        for rel in files:
            tf.add(os.path.join(ROOT, rel), arcname=f"{name}/{rel}")
        info = tarfile.TarInfo(f"{name}/PKG-INFO")
        data = _metadata().encode()
        info.size = len(data)
        import io
        tf.addfile(info, io.BytesIO(data))
    return os.path.basename(path)
