//! Kernel struct field offsets from the running kernel's BTF.
//!
//! Input: /sys/kernel/btf/vmlinux. Output: byte offsets of `struct sock` fields the probes
//! read (`__sk_common.skc_*`). Nothing is hard-coded: members inside anonymous unions/structs
//! are found by walking the type graph.

use btf_rs::{Btf, Type};

/// Errors resolving an offset.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF at {path}: {msg} (needs CONFIG_DEBUG_INFO_BTF=y)")]
    Read { path: String, msg: String },
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("BTF struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("BTF member {0} is a bitfield; byte offset undefined")]
    Bitfield(String),
}

/// Loaded kernel BTF.
pub struct KernelBtf {
    btf: Btf,
}

/// Default location of the kernel's BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

impl KernelBtf {
    /// Parses a BTF file (normally [`VMLINUX`]).
    pub fn open(path: &str) -> Result<Self, BtfError> {
        Btf::from_file(path)
            .map(|btf| Self { btf })
            .map_err(|e| BtfError::Read {
                path: path.into(),
                msg: e.to_string(),
            })
    }

    fn strip(&self, mut t: Type) -> Type {
        for _ in 0..16 {
            let next = match &t {
                Type::Typedef(x) => self.btf.resolve_chained_type(x).ok(),
                Type::Const(x) => self.btf.resolve_chained_type(x).ok(),
                Type::Volatile(x) => self.btf.resolve_chained_type(x).ok(),
                Type::Restrict(x) => self.btf.resolve_chained_type(x).ok(),
                Type::TypeTag(x) => self.btf.resolve_chained_type(x).ok(),
                _ => None,
            };
            match next {
                Some(n) => t = n,
                None => break,
            }
        }
        t
    }

    /// Bit offset of `name` inside `s`, descending into anonymous members.
    fn find(&self, s: &btf_rs::Struct, name: &str, depth: u32) -> Option<(u32, btf_rs::Member)> {
        if depth > 8 {
            return None;
        }
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            if mname == name {
                return Some((m.bit_offset(), m.clone()));
            }
            if mname.is_empty()
                && let Ok(t) = self.btf.resolve_chained_type(m)
                && let Type::Struct(inner) | Type::Union(inner) = self.strip(t)
                && let Some((off, found)) = self.find(&inner, name, depth + 1)
            {
                return Some((m.bit_offset() + off, found));
            }
        }
        None
    }

    fn strukt(&self, name: &str) -> Result<btf_rs::Struct, BtfError> {
        self.btf
            .resolve_types_by_name(name)
            .map_err(|_| BtfError::NoStruct(name.into()))?
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .ok_or_else(|| BtfError::NoStruct(name.into()))
    }

    /// Byte offset of a member path such as `["__sk_common", "skc_dport"]` in `struct strukt`.
    pub fn offset(&self, strukt: &str, path: &[&str]) -> Result<u32, BtfError> {
        let mut s = self.strukt(strukt)?;
        let mut total_bits = 0u32;
        let mut cur_name = strukt.to_string();
        for (i, member) in path.iter().enumerate() {
            let (bits, m) = self.find(&s, member, 0).ok_or_else(|| BtfError::NoMember {
                strukt: cur_name.clone(),
                member: (*member).into(),
            })?;
            if m.bitfield_size().is_some_and(|b| b != 0) {
                return Err(BtfError::Bitfield((*member).into()));
            }
            total_bits += bits;
            if i + 1 < path.len() {
                let t = self
                    .btf
                    .resolve_chained_type(&m)
                    .map_err(|_| BtfError::NoStruct((*member).into()))?;
                s = match self.strip(t) {
                    Type::Struct(x) | Type::Union(x) => x,
                    _ => return Err(BtfError::NoStruct((*member).into())),
                };
                cur_name = (*member).into();
            }
        }
        Ok(total_bits / 8)
    }
}

/// `struct sock` offsets the probes need (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub skc_num: u32,
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
}

impl SockOffsets {
    /// Resolves every offset from `btf`.
    pub fn resolve(btf: &KernelBtf) -> Result<Self, BtfError> {
        let f = |m: &str| btf.offset("sock", &["__sk_common", m]);
        Ok(Self {
            skc_daddr: f("skc_daddr")?,
            skc_rcv_saddr: f("skc_rcv_saddr")?,
            skc_dport: f("skc_dport")?,
            skc_num: f("skc_num")?,
            skc_v6_daddr: f("skc_v6_daddr")?,
            skc_v6_rcv_saddr: f("skc_v6_rcv_saddr")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against this machine's kernel BTF when it has one (CI machines do).
    #[test]
    fn resolves_sock_offsets_from_running_kernel() {
        if !std::path::Path::new(VMLINUX).exists() {
            eprintln!("no {VMLINUX}; skipped");
            return;
        }
        let btf = KernelBtf::open(VMLINUX).unwrap();
        let o = SockOffsets::resolve(&btf).unwrap();
        // Layout facts true on every kernel: skc_daddr and skc_rcv_saddr are adjacent __be32s
        // at the start of sock_common; dport and num are adjacent 16-bit ports.
        assert_eq!(o.skc_rcv_saddr, o.skc_daddr + 4);
        assert_eq!(o.skc_num, o.skc_dport + 2);
        assert!(o.skc_v6_daddr > o.skc_num && o.skc_v6_rcv_saddr == o.skc_v6_daddr + 16);
        assert!(matches!(
            btf.offset("sock", &["no_such_member"]),
            Err(BtfError::NoMember { .. })
        ));
    }
}
