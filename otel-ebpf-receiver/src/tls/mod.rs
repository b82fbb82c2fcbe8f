//! TLS discovery (issue #4): which files of a process hold TLS functions and at which file
//! offsets to put uprobes. Pure user space, no eBPF.
pub mod elf;
pub mod godwarf;
pub mod golang;
pub mod image;
pub mod ldcache;
pub mod maps;
pub mod needed;
pub mod registry;
pub mod target;
#[cfg(test)]
mod testutil;
