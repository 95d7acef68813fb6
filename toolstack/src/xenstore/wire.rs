//! The xenstore wire protocol (`xen/include/public/io/xs_wire.h`): message header, message
//! types, error names, and the framing of one message out of a byte stream.

use alloc::vec::Vec;
use core::fmt;
use xen::le::u32_at as le32;

/// Largest payload a message may carry; a connection announcing more is broken.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Longest absolute path (after a relative path has been made absolute).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Longest relative path a client may send.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;
/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;

/// Message types (`enum xsd_sockmsg_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum MsgType {
    /// `XS_CONTROL` (also known as `XS_DEBUG`).
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    ResetWatches = 21,
    DirectoryPart = 22,
}

impl MsgType {
    /// Every type this server knows, in numeric order.
    pub const ALL: [MsgType; 22] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
    ];

    /// The type with wire number `v`, if this server knows it.
    pub fn from_u32(v: u32) -> Option<MsgType> {
        MsgType::ALL.iter().copied().find(|t| *t as u32 == v)
    }
}

/// Error replies carry the errno *name* (`xsd_errors` in xs_wire.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsError {
    Inval,
    Acces,
    Exist,
    IsDir,
    NoEnt,
    NoMem,
    NoSpc,
    Io,
    NotEmpty,
    NoSys,
    RoFs,
    Busy,
    Again,
    IsConn,
    TooBig,
    Perm,
}

impl XsError {
    /// The name sent on the wire, e.g. `"ENOENT"`.
    pub fn name(self) -> &'static str {
        match self {
            XsError::Inval => "EINVAL",
            XsError::Acces => "EACCES",
            XsError::Exist => "EEXIST",
            XsError::IsDir => "EISDIR",
            XsError::NoEnt => "ENOENT",
            XsError::NoMem => "ENOMEM",
            XsError::NoSpc => "ENOSPC",
            XsError::Io => "EIO",
            XsError::NotEmpty => "ENOTEMPTY",
            XsError::NoSys => "ENOSYS",
            XsError::RoFs => "EROFS",
            XsError::Busy => "EBUSY",
            XsError::Again => "EAGAIN",
            XsError::IsConn => "EISCONN",
            XsError::TooBig => "E2BIG",
            XsError::Perm => "EPERM",
        }
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Framing errors. `Incomplete` is not fatal (wait for more bytes); `PayloadTooLong` breaks
/// the connection (C xenstored drops such a client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// `need` bytes in total are required before the message can be parsed.
    Incomplete { need: usize },
    /// The header announced a payload larger than [`XENSTORE_PAYLOAD_MAX`].
    PayloadTooLong(u32),
}

/// `struct xsd_sockmsg`, little-endian on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub msg_type: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    /// Parse the 16-byte header at the front of `b` and check its length field.
    pub fn parse(b: &[u8]) -> Result<Header, ProtoError> {
        if b.len() < HEADER_LEN {
            return Err(ProtoError::Incomplete { need: HEADER_LEN });
        }
        let h = Header {
            msg_type: le32(b, 0),
            req_id: le32(b, 4),
            tx_id: le32(b, 8),
            len: le32(b, 12),
        };
        if h.len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(ProtoError::PayloadTooLong(h.len));
        }
        Ok(h)
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.msg_type.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }
}

/// One message (request, reply or watch event): header fields plus payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub msg_type: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

/// A message from a client.
pub type Request = Message;

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ty = MsgType::from_u32(self.msg_type);
        f.debug_struct("Message")
            .field("type", &ty)
            .field("raw_type", &self.msg_type)
            .field("req_id", &self.req_id)
            .field("tx_id", &self.tx_id)
            .field("payload", &self.payload.escape_ascii().to_string())
            .finish()
    }
}

use alloc::string::ToString;

impl Message {
    /// A message of type `ty` with the given payload.
    pub fn new(ty: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message {
            msg_type: ty as u32,
            req_id,
            tx_id,
            payload,
        }
    }

    /// A request whose payload is `args`, each NUL-terminated (how Linux's xenbus sends them).
    pub fn request(ty: MsgType, req_id: u32, tx_id: u32, args: &[&[u8]]) -> Message {
        let mut payload = Vec::new();
        for a in args {
            payload.extend_from_slice(a);
            payload.push(0);
        }
        Message::new(ty, req_id, tx_id, payload)
    }

    /// Parse one message from the front of `buf` (header first, then `len` payload bytes).
    /// Bytes after the message are ignored; see [`Message::wire_len`].
    pub fn parse(buf: &[u8]) -> Result<Message, ProtoError> {
        let h = Header::parse(buf)?;
        let total = HEADER_LEN + h.len as usize;
        if buf.len() < total {
            return Err(ProtoError::Incomplete { need: total });
        }
        Ok(Message {
            msg_type: h.msg_type,
            req_id: h.req_id,
            tx_id: h.tx_id,
            payload: buf[HEADER_LEN..total].to_vec(),
        })
    }

    /// The known type, if any.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u32(self.msg_type)
    }

    /// Header plus payload length.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// The header of this message (payloads are at most 4096 bytes, so `len` fits).
    pub fn header(&self) -> Header {
        Header {
            msg_type: self.msg_type,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
        }
    }

    /// Append the wire form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header().encode());
        out.extend_from_slice(&self.payload);
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.wire_len());
        self.encode_into(&mut v);
        v
    }

    /// The reply to this request: same type, req_id and tx_id.
    pub fn reply(&self, payload: Vec<u8>) -> Message {
        Message {
            msg_type: self.msg_type,
            req_id: self.req_id,
            tx_id: self.tx_id,
            payload,
        }
    }

    /// The error reply to this request (`XS_ERROR`, `"ENAME\0"`).
    pub fn error(&self, e: XsError) -> Message {
        let mut p = Vec::with_capacity(8);
        p.extend_from_slice(e.name().as_bytes());
        p.push(0);
        Message {
            msg_type: MsgType::Error as u32,
            req_id: self.req_id,
            tx_id: self.tx_id,
            payload: p,
        }
    }

    /// `"OK\0"`.
    pub fn ok(&self) -> Message {
        self.reply(b"OK\0".to_vec())
    }

    /// A watch event `epath\0token\0` (req_id = tx_id = 0).
    pub fn watch_event(path: &[u8], token: &[u8]) -> Message {
        let mut p = Vec::with_capacity(path.len() + token.len() + 2);
        p.extend_from_slice(path);
        p.push(0);
        p.extend_from_slice(token);
        p.push(0);
        Message::new(MsgType::WatchEvent, 0, 0, p)
    }
}

/// Split a payload made of exactly NUL-terminated strings. `None` if it does not end in NUL.
pub fn split_args(payload: &[u8]) -> Option<Vec<&[u8]>> {
    let body = payload.strip_suffix(&[0])?;
    Some(body.split(|b| *b == 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_limits() {
        let m = Message::request(MsgType::Read, 7, 3, &[b"/a"]);
        let w = m.encode();
        assert_eq!(w.len(), 19);
        assert_eq!(Message::parse(&w).unwrap(), m);
        assert_eq!(
            Message::parse(&w[..10]),
            Err(ProtoError::Incomplete { need: 16 })
        );
        assert_eq!(
            Message::parse(&w[..17]),
            Err(ProtoError::Incomplete { need: 19 })
        );
        let mut h = m.header();
        h.len = 4097;
        assert_eq!(
            Header::parse(&h.encode()),
            Err(ProtoError::PayloadTooLong(4097))
        );
        h.len = 4096;
        assert!(Header::parse(&h.encode()).is_ok());
    }

    #[test]
    fn types_and_errors() {
        for t in MsgType::ALL {
            assert_eq!(MsgType::from_u32(t as u32), Some(t));
        }
        assert_eq!(MsgType::from_u32(20), None);
        assert_eq!(MsgType::from_u32(0xffff), None);
        assert_eq!(XsError::TooBig.name(), "E2BIG");
        let e = Message::request(MsgType::Read, 9, 4, &[b"/x"]).error(XsError::NoEnt);
        assert_eq!(e.msg_type, 16);
        assert_eq!((e.req_id, e.tx_id), (9, 4));
        assert_eq!(e.payload, b"ENOENT\0");
    }

    #[test]
    fn args() {
        assert_eq!(split_args(b"a\0b\0"), Some(alloc::vec![&b"a"[..], b"b"]));
        assert_eq!(split_args(b"a\0b"), None);
        assert_eq!(split_args(b""), None);
        assert_eq!(split_args(b"\0"), Some(alloc::vec![&b""[..]]));
    }
}
