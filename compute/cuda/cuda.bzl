"""nvcc from Bazel without rules_cuda (offline): a genrule compiles .cu files
for sm_90a (H100 / H200) and archives them; a cc_library wraps the archive
with the CUDA runtime link flags. Loading this file costs nothing: targets
made by the macro are tagged "manual", so //... in the CPU build never
builds them; they are built through deps under --config=cuda."""

NVCC = "/usr/local/cuda/bin/nvcc"
CUDA_LINKOPTS = [
    "-L/usr/local/cuda/lib64",
    "-L/usr/local/cuda/lib",
    "-lcudart_static",
    "-ldl",
    "-lrt",
    "-lpthread",
]

def moep_cuda_library(name, srcs, hdrs = [], includes = [], deps = [], nvcc_flags = []):
    """CUDA sources -> lib<name>_cu.a -> cc_library `name`.

    srcs: .cu files (and .cuh headers); hdrs: headers the .cu files include,
    from any package (labels); includes: -I folders relative to the workspace.
    """
    cu = [s for s in srcs if s.endswith(".cu")]
    flags = " ".join(["-arch=sm_90a", "-O3", "-std=c++17", "--extended-lambda", "-Xcompiler", "-fPIC"] +
                     ["-I" + i for i in includes] + ["-I$(GENDIR)"] + nvcc_flags)
    cmd = "set -e; objs=; "
    for f in cu:
        obj = "$(@D)/" + name + "_" + f.replace("/", "_").replace(".cu", ".o")
        cmd += "%s %s -c $(location %s) -o %s; objs=\"$$objs %s\"; " % (NVCC, flags, f, obj, obj)
    cmd += "ar rcs $@ $$objs"
    native.genrule(
        name = name + "_nvcc",
        srcs = srcs + hdrs,
        outs = ["lib" + name + "_cu.a"],
        cmd = cmd,
        tags = ["manual"],
        message = "nvcc " + name,
    )
    native.cc_library(
        name = name,
        srcs = [":lib" + name + "_cu.a"],
        linkopts = CUDA_LINKOPTS,
        tags = ["manual"],
        deps = deps,
        visibility = ["//visibility:public"],
    )
