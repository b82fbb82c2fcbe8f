//! Kernel struct field offsets and raw tracepoint prototypes from the running kernel's BTF.
//!
//! Input: /sys/kernel/btf/vmlinux. Output: byte offsets of the `struct sock` fields
//! (`__sk_common.skc_*`, `sk_protocol`) and `struct pt_regs` fields the probes read, and the
//! parameter types of raw tracepoints (`btf_trace_<name>` typedefs) so a kernel whose
//! tracepoint arguments moved is refused instead of misread. Nothing is hard-coded: members
//! inside anonymous unions/structs are found by walking the type graph.

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
    #[error("raw tracepoint {name} is not in this kernel's BTF (btf_trace_{name})")]
    NoTracepoint { name: String },
    #[error("raw tracepoint {name} has arguments ({found}), expected ({expected})")]
    TracepointArgs {
        name: String,
        found: String,
        expected: String,
    },
}

/// Loaded kernel BTF.
pub struct KernelBtf {
    btf: Btf,
}

/// Default location of the kernel's BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

impl KernelBtf {
    /// Opens a BTF file (normally [`VMLINUX`]): memory-mapped and parsed on demand when the
    /// file allows mmap (a few MB of page cache instead of ~60 MB of parsed types on the heap),
    /// else read and parsed whole.
    pub fn open(path: &str) -> Result<Self, BtfError> {
        Btf::from_file_with_backend(path, btf_rs::Backend::Mmap)
            .or_else(|_| Btf::from_file(path))
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

impl KernelBtf {
    /// Members of `enum name` as (name, value), e.g. `skb_drop_reason` (empty when this
    /// kernel has no such enum).
    pub fn enum_values(&self, name: &str) -> Vec<(String, u32)> {
        let Ok(types) = self.btf.resolve_types_by_name(name) else {
            return Vec::new();
        };
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Enum(e) => Some(
                    e.members
                        .iter()
                        .map(|m| (self.btf.resolve_name(m).unwrap_or_default(), m.val()))
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Whether the kernel has a function `name` in its BTF (an fentry/fexit target).
    pub fn has_func(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .is_ok_and(|ts| ts.iter().any(|t| matches!(t, Type::Func(_))))
    }

    /// Parameter names of function `name` in BTF (e.g. `["sk", "msg", "size"]` for
    /// `tcp_sendmsg`); `None` when the function is not in BTF.
    pub fn func_param_names(&self, name: &str) -> Option<Vec<String>> {
        let f = self
            .btf
            .resolve_types_by_name(name)
            .ok()?
            .into_iter()
            .find_map(|t| match t {
                Type::Func(f) => Some(f),
                _ => None,
            })?;
        let Ok(Type::FuncProto(fp)) = self.btf.resolve_chained_type(&f) else {
            return None;
        };
        Some(
            fp.parameters
                .iter()
                .map(|prm| self.btf.resolve_name(prm).unwrap_or_default())
                .collect(),
        )
    }

    /// A short C-like spelling of a type: `int`, `struct sock *`, `bool`.
    fn describe(&self, t: Type, depth: u32) -> String {
        if depth > 8 {
            return "?".into();
        }
        let name = |x: &dyn btf_rs::BtfType| self.btf.resolve_name(x).unwrap_or_default();
        match t {
            Type::Void => "void".into(),
            Type::Int(ref x) => name(x),
            Type::Typedef(ref x) => name(x),
            Type::Struct(ref x) => format!("struct {}", name(x)),
            Type::Union(ref x) => format!("union {}", name(x)),
            Type::Enum(ref x) => format!("enum {}", name(x)),
            Type::Ptr(ref x) => match self.btf.resolve_chained_type(x) {
                Ok(inner) => format!("{} *", self.describe(inner, depth + 1)),
                Err(_) => "void *".into(),
            },
            Type::Const(ref x) | Type::Volatile(ref x) => match self.btf.resolve_chained_type(x) {
                Ok(inner) => self.describe(inner, depth + 1),
                Err(_) => "?".into(),
            },
            _ => "?".into(),
        }
    }

    /// Parameter types of raw tracepoint `name` after the leading `void *` context, e.g.
    /// `["struct sock *", "int", "int"]` for `sock_send_length` (source: the kernel's
    /// `btf_trace_<name>` typedef, a pointer to the probe's function prototype).
    pub fn raw_tracepoint_params(&self, name: &str) -> Result<Vec<String>, BtfError> {
        let missing = || BtfError::NoTracepoint { name: name.into() };
        let td = self
            .btf
            .resolve_types_by_name(&format!("btf_trace_{name}"))
            .map_err(|_| missing())?
            .into_iter()
            .find_map(|t| match t {
                Type::Typedef(x) => Some(x),
                _ => None,
            })
            .ok_or_else(missing)?;
        let Ok(Type::Ptr(p)) = self.btf.resolve_chained_type(&td) else {
            return Err(missing());
        };
        let Ok(Type::FuncProto(fp)) = self.btf.resolve_chained_type(&p) else {
            return Err(missing());
        };
        Ok(fp
            .parameters
            .iter()
            .skip(1)
            .map(|prm| match self.btf.resolve_chained_type(prm) {
                Ok(t) => self.describe(t, 0),
                Err(_) => "?".into(),
            })
            .collect())
    }

    /// Checks that raw tracepoint `name` starts with the parameters `expected`.
    pub fn expect_raw_tracepoint(&self, name: &str, expected: &[&str]) -> Result<(), BtfError> {
        let found = self.raw_tracepoint_params(name)?;
        if found.len() < expected.len() || found.iter().zip(expected).any(|(f, e)| f != e) {
            return Err(BtfError::TracepointArgs {
                name: name.into(),
                found: found.join(", "),
                expected: expected.join(", "),
            });
        }
        Ok(())
    }
}

/// `struct pt_regs` offsets (bytes) of the syscall number and first three arguments, as the
/// kernel saved them at syscall entry (x86-64: `orig_ax`, `di`, `si`, `dx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegsOffsets {
    pub nr: u32,
    pub arg0: u32,
    pub arg1: u32,
    pub arg2: u32,
}

impl RegsOffsets {
    /// Resolves the offsets for this architecture (x86-64 only; others are an error naming
    /// the missing member). The probes read the four registers in one 32-byte window starting
    /// at `arg2` (`dx`), so every offset must lie in it, 8-byte aligned.
    pub fn resolve(btf: &KernelBtf) -> Result<Self, BtfError> {
        let f = |m: &str| btf.offset("pt_regs", &[m]);
        let r = Self {
            nr: f("orig_ax")?,
            arg0: f("di")?,
            arg1: f("si")?,
            arg2: f("dx")?,
        };
        for (name, off) in [("orig_ax", r.nr), ("di", r.arg0), ("si", r.arg1)] {
            if off < r.arg2 || off - r.arg2 >= 32 || !(off - r.arg2).is_multiple_of(8) {
                return Err(BtfError::NoMember {
                    strukt: "pt_regs (32-byte window from dx)".into(),
                    member: name.into(),
                });
            }
        }
        Ok(r)
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
    pub skc_family: u32,
    pub sk_protocol: u32,
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
            skc_family: f("skc_family")?,
            // A u16 since Linux 5.6 (a bitfield before: refused with BtfError::Bitfield).
            sk_protocol: btf.offset("sock", &["sk_protocol"])?,
        })
    }
}

/// Offsets (bytes) to follow a task's fd to its `struct sock` (Go TLS calls carry an fd, not
/// a socket) and to tell a new process from a new thread at fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOffsets {
    /// `task_struct.pid`, `task_struct.tgid` (`pid_t`).
    pub pid: u32,
    pub tgid: u32,
    /// `task_struct.files` (`struct files_struct *`).
    pub files: u32,
    /// `files_struct.fdt` (`struct fdtable *`).
    pub fdt: u32,
    /// `fdtable.fd` (`struct file **`) and `fdtable.max_fds` (`unsigned int`).
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    /// `file.private_data` (a `struct socket *` for sockets).
    pub file_private_data: u32,
    /// `socket.sk` (`struct sock *`).
    pub socket_sk: u32,
}

impl TaskOffsets {
    /// Resolves every offset from `btf`.
    pub fn resolve(btf: &KernelBtf) -> Result<Self, BtfError> {
        Ok(Self {
            pid: btf.offset("task_struct", &["pid"])?,
            tgid: btf.offset("task_struct", &["tgid"])?,
            files: btf.offset("task_struct", &["files"])?,
            fdt: btf.offset("files_struct", &["fdt"])?,
            fdt_fd: btf.offset("fdtable", &["fd"])?,
            fdt_max_fds: btf.offset("fdtable", &["max_fds"])?,
            file_private_data: btf.offset("file", &["private_data"])?,
            socket_sk: btf.offset("socket", &["sk"])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_task_offsets_from_running_kernel() {
        if !std::path::Path::new(VMLINUX).exists() {
            eprintln!("no {VMLINUX}; skipped");
            return;
        }
        let btf = KernelBtf::open(VMLINUX).unwrap();
        let t = TaskOffsets::resolve(&btf).unwrap();
        // pid_t pid; pid_t tgid; are adjacent in task_struct; fdtable starts with max_fds.
        assert_eq!(t.tgid, t.pid + 4);
        assert_eq!(t.fdt_max_fds, 0);
        assert_eq!(t.fdt_fd, 8);
        assert!(t.files > t.tgid);
    }

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
        // skc_family follows the address/hash words; sk_protocol lies past sock_common.
        assert!(o.skc_family > o.skc_num && o.skc_family < o.skc_v6_daddr);
        assert!(o.sk_protocol > o.skc_v6_rcv_saddr);
    }

    #[test]
    fn reads_function_parameter_names_from_running_kernel() {
        let Ok(btf) = KernelBtf::open(VMLINUX) else {
            return;
        };
        // One prototype since Linux 4.1.
        assert_eq!(
            btf.func_param_names("tcp_sendmsg").unwrap(),
            ["sk", "msg", "size"]
        );
        assert!(btf.func_param_names("no_such_function_here").is_none());
    }

    #[test]
    fn resolves_regs_and_raw_tracepoints_from_running_kernel() {
        if !std::path::Path::new(VMLINUX).exists() {
            eprintln!("no {VMLINUX}; skipped");
            return;
        }
        let btf = KernelBtf::open(VMLINUX).unwrap();
        let r = RegsOffsets::resolve(&btf).unwrap();
        // x86-64 struct pt_regs saves si right after dx, di after si, orig_ax after di.
        assert_eq!(
            (r.arg1, r.arg0, r.nr),
            (r.arg2 + 8, r.arg2 + 16, r.arg2 + 24)
        );
        assert_eq!(
            btf.raw_tracepoint_params("sock_send_length").unwrap(),
            ["struct sock *", "int", "int"]
        );
        btf.expect_raw_tracepoint("inet_sock_set_state", &["struct sock *", "int", "int"])
            .unwrap();
        assert!(matches!(
            btf.expect_raw_tracepoint("sock_recv_length", &["int"]),
            Err(BtfError::TracepointArgs { .. })
        ));
        assert!(matches!(
            btf.raw_tracepoint_params("no_such_tracepoint"),
            Err(BtfError::NoTracepoint { .. })
        ));
    }
}
