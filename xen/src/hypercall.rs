//! The one narrow door to the hypervisor.
//!
//! A hypercall is a number and up to five register arguments (Xen's x86-64 ABI: RAX = number,
//! RDI, RSI, RDX, R10, R8 = arguments, result in RAX as a negative errno on failure). Many
//! arguments are guest-physical addresses of buffers Xen reads or writes. To keep everything
//! above this module safe *and* runnable against a fake hypervisor in host tests:
//!
//! * A [`Call`] can only be built inside this crate, by the typed wrappers in [`crate::ops`].
//!   Each wrapper passes buffers as borrowed slices ([`Arg::In`] / [`Arg::InOut`]), never as raw
//!   numbers, so the borrow checker keeps every buffer alive and exclusive for the call.
//! * A buffer referenced from *inside* another buffer (a `XEN_GUEST_HANDLE` field) is passed as
//!   an extra argument after the register arguments. The real implementation ignores extras (they
//!   are only borrowed to stay alive); a fake finds them by matching the address stored in the
//!   outer struct against [`Arg::addr`].
//! * [`Hypercall`] implementations turn `In`/`InOut` into the slice's address. In dom0 that is
//!   also the guest-physical address, because dom0 runs on an identity map.

/// Hypercall numbers (`xen/include/public/xen.h`).
pub mod nr {
    pub const CONSOLE_IO: u32 = 18;
    pub const MEMORY_OP: u32 = 12;
    pub const MULTICALL: u32 = 13;
    pub const SET_TIMER_OP: u32 = 15;
    pub const XEN_VERSION: u32 = 17;
    pub const GRANT_TABLE_OP: u32 = 20;
    pub const VCPU_OP: u32 = 24;
    pub const SCHED_OP: u32 = 29;
    pub const EVENT_CHANNEL_OP: u32 = 32;
    pub const PHYSDEV_OP: u32 = 33;
    pub const HVM_OP: u32 = 34;
    pub const SYSCTL: u32 = 35;
    pub const DOMCTL: u32 = 36;
    pub const PLATFORM_OP: u32 = 7;
}

/// One hypercall argument.
#[derive(Debug)]
pub enum Arg<'a> {
    /// A plain number (a sub-op, a port, a domain id, a count).
    Val(u64),
    /// A buffer Xen only reads.
    In(&'a [u8]),
    /// A buffer Xen may write.
    InOut(&'a mut [u8]),
}

impl Arg<'_> {
    /// The value that goes into the register: the number, or the buffer's address.
    pub fn addr(&self) -> u64 {
        match self {
            Arg::Val(v) => *v,
            Arg::In(b) => b.as_ptr() as u64,
            Arg::InOut(b) => b.as_ptr() as u64,
        }
    }
}

/// The largest number of arguments a call carries: five registers plus buffers referenced from
/// inside them.
pub const MAX_ARGS: usize = 8;

/// A hypercall ready to be issued. Only this crate builds them (see the module docs).
#[derive(Debug)]
pub struct Call<'a> {
    op: u32,
    nregs: usize,
    args: [Arg<'a>; MAX_ARGS],
    nargs: usize,
}

impl<'a> Call<'a> {
    pub(crate) fn new(op: u32, regs: &mut dyn Iterator<Item = Arg<'a>>) -> Self {
        let mut args = [const { Arg::Val(0) }; MAX_ARGS];
        let mut n = 0;
        for a in regs {
            args[n] = a;
            n += 1;
        }
        debug_assert!(n <= 5);
        Call {
            op,
            nregs: n,
            args,
            nargs: n,
        }
    }

    /// Attach a buffer that a register argument's struct points at.
    pub(crate) fn with_extra(mut self, extra: Arg<'a>) -> Self {
        self.args[self.nargs] = extra;
        self.nargs += 1;
        self
    }

    /// The hypercall number.
    pub fn op(&self) -> u32 {
        self.op
    }

    /// The register arguments (at most five), in ABI order.
    pub fn regs(&mut self) -> &mut [Arg<'a>] {
        &mut self.args[..self.nregs]
    }

    /// Buffers referenced from inside the register arguments.
    pub fn extras(&mut self) -> &mut [Arg<'a>] {
        &mut self.args[self.nregs..self.nargs]
    }

    /// Register arguments and extras, split (for fakes that need both at once).
    pub fn split(&mut self) -> (&mut [Arg<'a>], &mut [Arg<'a>]) {
        let (r, rest) = self.args.split_at_mut(self.nregs);
        (r, &mut rest[..self.nargs - self.nregs])
    }

    /// The five register values (unused ones are 0).
    pub fn reg_values(&self) -> [u64; 5] {
        let mut v = [0u64; 5];
        for (i, a) in self.args[..self.nregs].iter().enumerate() {
            v[i] = a.addr();
        }
        v
    }
}

/// Something that can issue hypercalls: dom0's `vmcall`/`vmmcall`, or a fake in host tests.
///
/// Implementations must treat `In`/`InOut` buffers as valid only for the duration of the call.
pub trait Hypercall {
    /// Issue the call; returns Xen's result (negative errno on failure).
    fn hypercall(&self, call: &mut Call<'_>) -> i64;
}

/// Build a call from a list of register arguments.
macro_rules! call {
    ($op:expr $(, $arg:expr)* $(,)?) => {
        $crate::hypercall::Call::new($op, &mut [$($arg),*].into_iter())
    };
}
pub(crate) use call;
