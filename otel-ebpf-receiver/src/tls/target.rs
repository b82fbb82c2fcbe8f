//! Shapes of the analysis results: TLS functions, probes (file offsets), libraries found,
//! and the typed error naming a file that cannot be traced.
//!
//! Stage: output types of [`super::elf`] (per-file analysis), consumed by
//! [`super::registry`] and the kernel-side attach code.
//! Limits: data only; no I/O.

use std::path::PathBuf;

use super::fileio::FileError;
use super::godwarf::GoTlsOffsets;
use super::golang::{self, GoVersion, PclntabFormat};
use super::image::ImageError;
/// A TLS library function that is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFunction {
    /// `int SSL_read(SSL *, void *buf, int num)`.
    SslRead,
    /// `int SSL_write(SSL *, const void *buf, int num)`.
    SslWrite,
    /// `int SSL_read_ex(SSL *, void *buf, size_t num, size_t *readbytes)`.
    SslReadEx,
    /// `int SSL_write_ex(SSL *, const void *buf, size_t num, size_t *written)`.
    SslWriteEx,
    /// `ssize_t gnutls_record_recv(gnutls_session_t, void *data, size_t size)`.
    GnutlsRecordRecv,
    /// `ssize_t gnutls_record_send(gnutls_session_t, const void *data, size_t size)`.
    GnutlsRecordSend,
    /// Go `func (c *crypto/tls.Conn) Read(b []byte) (int, error)`.
    GoConnRead,
    /// Go `func (c *crypto/tls.Conn) Write(b []byte) (int, error)`.
    GoConnWrite,
    /// rustls `ConnectionCommon::read_tls(&mut self, &mut dyn Read)` (socket reads).
    RustlsReadTls,
    /// rustls `ConnectionCommon::write_tls(&mut self, &mut dyn Write)` (socket writes).
    RustlsWriteTls,
    /// rustls `ConnectionCommon::reader(&mut self) -> Reader` (names the session), `&mut self`
    /// in RDI (the `Reader` returned in registers).
    RustlsReader,
    /// The same function compiled to return its `Reader` through a hidden result pointer in
    /// RDI (as rustc 1.95 does): `&mut self` is in RSI.
    RustlsReaderSret,
    /// rustls `<ConnectionCommon as PlaintextSink>::write(&mut self, &[u8])`.
    RustlsWrite,
    /// rustls `<ConnectionCommon as PlaintextSink>::write_vectored(&mut self, &[IoSlice])`.
    RustlsWriteVectored,
    /// rustls `<Reader as std::io::Read>::read(&mut self, &mut [u8])`.
    RustlsRead,
    /// rustls `Reader::into_first_chunk(self) -> io::Result<&[u8]>`.
    RustlsFirstChunk,
    /// rustls `<Reader as std::io::BufRead>::consume(&mut self, usize)`.
    RustlsConsume,
}

impl TlsFunction {
    /// The symbol name in the file.
    pub fn symbol(self) -> &'static str {
        match self {
            TlsFunction::SslRead => "SSL_read",
            TlsFunction::SslWrite => "SSL_write",
            TlsFunction::SslReadEx => "SSL_read_ex",
            TlsFunction::SslWriteEx => "SSL_write_ex",
            TlsFunction::GnutlsRecordRecv => "gnutls_record_recv",
            TlsFunction::GnutlsRecordSend => "gnutls_record_send",
            TlsFunction::GoConnRead => "crypto/tls.(*Conn).Read",
            TlsFunction::GoConnWrite => "crypto/tls.(*Conn).Write",
            TlsFunction::RustlsReadTls => "rustls::ConnectionCommon::read_tls",
            TlsFunction::RustlsWriteTls => "rustls::ConnectionCommon::write_tls",
            TlsFunction::RustlsReader | TlsFunction::RustlsReaderSret => {
                "rustls::ConnectionCommon::reader"
            }
            TlsFunction::RustlsWrite => "<rustls::ConnectionCommon as PlaintextSink>::write",
            TlsFunction::RustlsWriteVectored => {
                "<rustls::ConnectionCommon as PlaintextSink>::write_vectored"
            }
            TlsFunction::RustlsRead => "<rustls::Reader as std::io::Read>::read",
            TlsFunction::RustlsFirstChunk => "rustls::Reader::into_first_chunk",
            TlsFunction::RustlsConsume => "<rustls::Reader as std::io::BufRead>::consume",
        }
    }

    /// True for functions that return plaintext read from the peer.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            TlsFunction::SslRead
                | TlsFunction::SslReadEx
                | TlsFunction::GnutlsRecordRecv
                | TlsFunction::GoConnRead
                | TlsFunction::RustlsRead
                | TlsFunction::RustlsFirstChunk
                | TlsFunction::RustlsConsume
        )
    }
}

/// Where in a function a probe fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Uprobe at the function's first instruction.
    Entry,
    /// Uretprobe (attached at the entry offset, fires on return).
    Return,
    /// Plain uprobe on one RET instruction (Go: one per RET).
    ReturnInstruction,
}

/// One probe to attach: `offset` is a byte offset in the file (not a virtual address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Probe {
    /// Which function.
    pub function: TlsFunction,
    /// Entry, uretprobe or RET instruction.
    pub kind: ProbeKind,
    /// File offset.
    pub offset: u64,
}

/// OpenSSL family member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenSslFlavour {
    /// OpenSSL 1.0.x (no `SSL_read_ex`).
    OpenSsl1_0,
    /// OpenSSL 1.1.x.
    OpenSsl1_1,
    /// OpenSSL 3.x.
    OpenSsl3,
    /// BoringSSL (Chrome, Envoy, some Node/Electron builds).
    BoringSsl,
    /// The `SSL_*` API with no version clue (no version string, unusual SONAME).
    Unknown,
}

/// Whether the library is its own shared object or linked into another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// `libssl.so.*`, `libgnutls.so.*`.
    Shared,
    /// Linked into an executable (e.g. `node`) or another library.
    Static,
}

/// How Go functions were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoSymbolSource {
    /// `.symtab` (not stripped).
    Symtab,
    /// `.gopclntab` function table (stripped with `-s`).
    Pclntab(PclntabFormat),
}

/// The TLS implementation found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsLibrary {
    /// OpenSSL or BoringSSL.
    OpenSsl {
        /// Family member.
        flavour: OpenSslFlavour,
        /// Version from the file's `OpenSSL x.y.z` string (e.g. `3.0.19`), else the SONAME's
        /// (`3`, `1.1`); `None` when neither exists.
        version: Option<String>,
        /// Shared library or linked into something else.
        linkage: Linkage,
        /// `SSL_get_fd` is present (informational: fd lookup helpers for the kernel side).
        has_get_fd: bool,
        /// `SSL_get_rfd` is present (informational).
        has_get_rfd: bool,
    },
    /// GnuTLS.
    GnuTls {
        /// From the `Enabled GnuTLS x.y.z` log string, else the SONAME's major (`30`).
        version: Option<String>,
    },
    /// Go `crypto/tls` (Go ≥ 1.17, register ABI).
    Go {
        /// Toolchain version from `.go.buildinfo`.
        version: GoVersion,
        /// Struct offsets from `*tls.Conn` to the fd.
        offsets: GoTlsOffsets,
        /// `.symtab` or `.gopclntab`.
        symbols: GoSymbolSource,
    },
    /// rustls 0.21–0.23 linked into a Rust program (found by symbol name, see
    /// [`super::rustls`]).
    Rustls {
        /// From the `rustls-X.Y.Z` panic-location paths in the file, when present.
        version: Option<String>,
    },
}

/// One TLS implementation in a file and its probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// What was found.
    pub library: TlsLibrary,
    /// Where to attach (file offsets), entry probes first.
    pub probes: Vec<Probe>,
}

/// Result of analysing one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAnalysis {
    /// The path analysed (as opened by us, e.g. `/proc/PID/root/usr/lib/...`).
    pub path: PathBuf,
    /// GNU build-id, hex, when present.
    pub build_id: Option<String>,
    /// TLS implementations found; empty when the file has none.
    pub targets: Vec<TlsTarget>,
}

impl FileAnalysis {
    /// True when at least one target was found.
    pub fn is_tls(&self) -> bool {
        !self.targets.is_empty()
    }
}

/// A file that cannot be traced, with its path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct AnalyzeError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: AnalyzeReason,
}

/// Why a file cannot be traced.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeReason {
    /// Unreadable, not ELF, wrong architecture, malformed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A TLS library by name with none of the expected symbols (stripped or unknown layout).
    #[error("named like a TLS library but exports none of its functions (stripped?)")]
    NoTlsSymbols,
    /// A symbol's address lies in no file-backed `PT_LOAD` segment.
    #[error("{symbol} at {address:#x} is not backed by the file")]
    AddressNotInFile {
        /// Symbol name.
        symbol: &'static str,
        /// Its virtual address.
        address: u64,
    },
    /// A Go function whose body is empty, too large, or has no RET instruction.
    #[error("{symbol}: {what}")]
    BadFunction {
        /// Symbol name.
        symbol: &'static str,
        /// What is wrong.
        what: &'static str,
    },
    /// A Go binary using `crypto/tls` whose Go version cannot be read.
    #[error("Go binary without a readable .go.buildinfo version")]
    GoVersionUnknown,
    /// A Go binary older than 1.17 (stack-based calling convention).
    #[error("Go {0} is below 1.17 (no register ABI), not supported")]
    GoTooOld(String),
    /// The analysis panicked (a parser bug hit by this file); caught, the file is skipped.
    #[error("analysis panicked: {0}")]
    Panicked(String),
    /// More probes than a file (or a Go function's RET instructions) may get.
    #[error("{count} probes, above the cap of {max}")]
    TooManyProbes {
        /// Probes the file (or function) would need.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// rustls symbols found but some functions missing (inlined by an optimised build): the
    /// file is not half-traced. Lists the missing functions.
    #[error("rustls functions missing (inlined?): {0}")]
    RustlsIncomplete(String),
    /// A stripped Go binary whose `.gopclntab` is unusable.
    #[error(transparent)]
    Pclntab(#[from] golang::PclntabError),
}

impl AnalyzeReason {
    /// A short stable label for a self-metric (`reason="not_elf"`).
    pub fn label(&self) -> &'static str {
        match self {
            AnalyzeReason::Image(ImageError::Io(_)) => "unreadable",
            AnalyzeReason::Image(ImageError::File(FileError::Io(_))) => "unreadable",
            AnalyzeReason::Image(ImageError::File(FileError::NotRegular(_))) => "not_regular_file",
            AnalyzeReason::Image(ImageError::File(FileError::TooLarge { .. })) => "too_large",
            AnalyzeReason::Image(ImageError::File(FileError::Changed(_))) => "file_changed",
            AnalyzeReason::Image(ImageError::NotElf) => "not_elf",
            AnalyzeReason::Image(ImageError::UnsupportedArch(_)) => "unsupported_arch",
            AnalyzeReason::Image(ImageError::Malformed(_)) => "malformed_elf",
            AnalyzeReason::NoTlsSymbols => "stripped",
            AnalyzeReason::AddressNotInFile { .. } => "bad_symbol",
            AnalyzeReason::BadFunction { .. } => "bad_function",
            AnalyzeReason::GoVersionUnknown => "go_version_unknown",
            AnalyzeReason::GoTooOld(_) => "go_too_old",
            AnalyzeReason::Pclntab(_) => "bad_pclntab",
            AnalyzeReason::RustlsIncomplete(_) => "rustls_incomplete",
            AnalyzeReason::TooManyProbes { .. } => "too_many_probes",
            AnalyzeReason::Panicked(_) => "analysis_panic",
        }
    }
}
