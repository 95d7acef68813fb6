//! The compression of a bzImage's payload (or of any module), by its magic number: the formats
//! Linux can build a kernel with (`CONFIG_KERNEL_*`, magics as in Linux's `lib/decompress.c`
//! and libxc's `xg_dom_bzimageloader.c`).

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Lz4,
    Bzip2,
    Lzma,
    Lzo,
    Unknown,
}

impl Compression {
    /// Recognises the compression of `data` by its first bytes.
    pub fn detect(data: &[u8]) -> Self {
        const MAGICS: &[(&[u8], Compression)] = &[
            (&[0x1f, 0x8b], Compression::Gzip),
            (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], Compression::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
            (&[0x02, 0x21, 0x4c, 0x18], Compression::Lz4),
            (b"BZh", Compression::Bzip2),
            (&[0x5d, 0x00, 0x00], Compression::Lzma),
            (&[0x89, 0x4c, 0x5a, 0x4f], Compression::Lzo),
        ];
        MAGICS
            .iter()
            .find(|(m, _)| data.starts_with(m))
            .map_or(Compression::Unknown, |&(_, c)| c)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
            Compression::Unknown => "unknown",
        }
    }
}
