#![allow(clippy::print_stdout)] // cargo reads build-script directives from stdout
                                // Shared build script of every crate that links libtorch (see each Cargo.toml's `build`).
                                //
                                // 1. rpath: binaries and test executables find libtorch at run time without LD_LIBRARY_PATH.
                                // 2. CUDA: torch-sys asks for `-ltorch_cuda`, but under the default `--as-needed` the linker
                                //    drops it because no symbol is referenced directly; then `Cuda::is_available()` is false
                                //    on a GPU host. Linking it inside `--no-as-needed` keeps the DT_NEEDED entry.
                                //
                                // The library folder comes from `LIBTORCH` (set by scripts/env.sh, or by the user).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=MOIRELAB_LIBTORCH_LIB");
    let lib = std::env::var_os("MOIRELAB_LIBTORCH_LIB")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LIBTORCH").map(|p| PathBuf::from(p).join("lib")));
    let Some(lib) = lib.filter(|l| l.join("libtorch_cpu.so").exists()) else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
