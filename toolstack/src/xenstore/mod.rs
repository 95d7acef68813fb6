//! The xenstore service: wire protocol, node store with permissions, watches, transactions and
//! quotas, and the shared-ring connection logic. Pure logic: no hypercalls and no raw memory;
//! dom0 maps each domain's ring page and hands it in through [`RingPage`].
//!
//! Reference: `docs/misc/xenstore.txt`, `xen/include/public/io/xs_wire.h` and the behaviour of
//! C xenstored 4.17 (see `reference/xen-toolstack-netback.md` §2). Deliberate choices:
//! * A released domain's permissions are revoked everywhere (nodes it owned pass to dom0)
//!   rather than deleted; the toolstack removes `/local/domain/<id>` itself.
//! * Quota errors: too many nodes, too large a value, too deep a path, too many transactions,
//!   too many permission entries or nodes touched in one transaction → `ENOSPC`; too many
//!   watches → `E2BIG` (as C xenstored).
//! * Transactions are optimistic: they read through to the live tree, remember the generation
//!   of every node they look at, and fail with `EAGAIN` at commit if any of them changed.

mod path;
mod perms;
mod ring;
mod store;
mod tree;
mod wire;

#[cfg(test)]
mod tests;

pub use path::{ClientPath, canonicalize, domain_path};
pub use perms::{Access, Perm, Perms};
pub use ring::{Connection, RingError, RingPage, Server, XENSTORE_RING_SIZE, ring_layout};
pub use store::{
    DomainEvent, DomainInfo, INTRODUCE_DOMAIN, RELEASE_DOMAIN, Reply, Store, reply_result,
};
pub use wire::{
    HEADER_LEN, Header, Message, MsgType, ProtoError, Request, XENSTORE_ABS_PATH_MAX,
    XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX, XsError, split_args,
};

/// A Xen domain id (`domid_t`).
pub type DomId = u16;

/// First reserved domain id (`DOMID_FIRST_RESERVED`); nothing at or above can be introduced.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;

/// Per-domain limits (dom0 is exempt). Defaults follow C xenstored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nodes a domain may own.
    pub max_nodes: u32,
    /// Largest value a domain may write.
    pub max_value_len: usize,
    /// Watches per domain.
    pub max_watches: usize,
    /// Open transactions per domain.
    pub max_transactions: usize,
    /// Replies and events queued for a domain's ring before its requests are no longer read
    /// and further watch events are dropped.
    pub max_pending: usize,
    /// Deepest path (in components) a domain may create.
    pub max_depth: usize,
    /// Permission entries per node set by a domain.
    pub max_perms: usize,
    /// Nodes one transaction may touch.
    pub max_tx_nodes: usize,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            max_nodes: 1000,
            max_value_len: 2048,
            max_watches: 128,
            max_transactions: 10,
            max_pending: 1024,
            max_depth: 64,
            max_perms: 5,
            max_tx_nodes: 1024,
        }
    }
}
