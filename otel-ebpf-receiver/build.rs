//! Builds the kernel probes (`ebpf/otel-ebpf-probes`) for bpfel-unknown-none with aya-build and
//! leaves the object in OUT_DIR for `include_bytes_aligned!`.
//!
//! Needs: rust-src, bpf-linker (see scripts/setup.sh). Uses the current toolchain with
//! RUSTC_BOOTSTRAP=1 for `-Z build-std=core`, so no nightly toolchain is required.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .join("ebpf/otel-ebpf-probes");
    let common = root.parent().context("ebpf dir")?.join("otel-ebpf-common");
    println!("cargo:rerun-if-changed={}", common.display());
    if which_bpf_linker().is_none() {
        return Err(anyhow!(
            "bpf-linker not found on PATH: run scripts/setup.sh (it builds bpf-linker against rustc's LLVM)"
        ));
    }
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".into());
    let root_dir = root.to_str().context("utf-8 path")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "otel-ebpf-probes",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}

fn which_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("bpf-linker"))
        .find(|p| p.is_file())
}
