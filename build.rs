//! Gives every binary of this package an rpath to libtorch, so users never set `LD_LIBRARY_PATH`,
//! and links `libtorch_cuda` when the libtorch has it, so `Device::cuda_if_available()` can see a GPU.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        // The linker drops libraries nothing references; torch's CUDA backend registers itself
        // when loaded, so it must be forced in.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
