"""Builds cprof's native parts: the CPython extension and the runtime libraries linked into profiled programs.

The runtime is not a Python extension: it is a plain shared library (and a static archive for -static links)
that `cprof cc` links into the user's executables. It is built here from the same csrc/ sources so that one
`pip install` yields a working tool, and placed with its headers in cprof/_runtime/.
"""

import os
import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = "csrc"
RUNTIME_SOURCES = ["runtime.c", "calibration.c", "arena.c", "calltree.c", "threads.c", "process.c", "trace.c", "timer.c", "records.c",
                   "guard_fast.c", "sampling.c", "modules.c", "counts.c", "waits.c", "exec_wrappers.c", "thread_start.c",
                   "heap_interposed.c",
                   "heap_wrapped.c"]
PUBLIC_HEADERS = ["cprof.h", "cprof_guard.h"]
CFLAGS = ["-O2", "-g", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=default"]


class BuildWithRuntime(build_ext):
    def run(self):
        super().run()
        self.build_runtime()

    def runtime_dir(self):
        package_dir = os.path.dirname(self.get_ext_fullpath("cprof._native"))
        return os.path.join(package_dir, "_runtime")

    def build_runtime(self):
        out = self.runtime_dir()
        os.makedirs(os.path.join(out, "include"), exist_ok=True)
        objects = self.compiler.compile(
            [os.path.join(CSRC, s) for s in RUNTIME_SOURCES],
            output_dir=os.path.join(self.build_temp, "runtime"),
            extra_preargs=["-fPIC"],
            extra_postargs=CFLAGS + ["-ftls-model=initial-exec", "-pthread"],
        )
        # the malloc family comes in two forms: defined in front of libc's (the shared runtime), or reached through
        # the linker's --wrap (a -static link, where libc.a defines malloc itself)
        shared_objects = [o for o in objects if not os.path.basename(o).startswith("heap_wrapped.")]
        self.compiler.link_shared_object(
            shared_objects,
            os.path.join(out, "libcprofrt.so"),
            extra_postargs=["-pthread", "-Wl,-soname,libcprofrt.so", "-Wl,-z,nodelete"],
        )
        # libcprofrt.a: everything but the wrappers of libc functions (a -static link cannot interpose libc's own
        # functions: it would define them twice), for -static links; libcprofguard.a: the guard's fast paths alone,
        # linked (hidden) into every dynamically linked program and library beside libcprofrt.so (cprof_guard.h)
        guard_objects = [o for o in objects if os.path.basename(o).startswith("guard_fast.")]
        static_objects = [o for o in objects
                          if not os.path.basename(o).startswith(("waits.", "exec_wrappers.", "thread_start.", "heap_interposed."))]
        for name, members in (("cprofrt", static_objects), ("cprofguard", guard_objects)):
            archive = os.path.join(out, f"lib{name}.a")
            if os.path.exists(archive):
                os.remove(archive)
            self.compiler.create_static_lib(members, name, output_dir=out)
        for header in PUBLIC_HEADERS + ["runfile.h"]:
            shutil.copy(os.path.join(CSRC, header), os.path.join(out, "include", header))
        self.build_client(out)

    def build_client(self, out):
        """The compiler shims' client to the build server (csrc/build_client.c): a program, not a library."""
        objects = self.compiler.compile([os.path.join(CSRC, "build_client.c")],
                                        output_dir=os.path.join(self.build_temp, "client"), extra_postargs=CFLAGS)
        self.compiler.link_executable(objects, "cprof-build-client", output_dir=out)


setup(
    ext_modules=[
        Extension(
            "cprof._native",
            sources=[os.path.join(CSRC, s) for s in ("binding.c", "reader.c", "records.c", "timer.c", "ffi_call.c")],
            extra_compile_args=CFLAGS,
            # libffi calls the functions of instrumented libraries loaded into Python (cprof/library/)
            libraries=["ffi", "dl"],
        )
    ],
    cmdclass={"build_ext": BuildWithRuntime},
)
