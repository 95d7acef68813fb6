//! Evaluating namespace objects: named data, and methods written in the AML subset firmware
//! uses to compute `_STA`, `_BBN`, `_SEG`, `_CRS` and `_PRT` (see the crate documentation).
//!
//! Bounded: at most [`Eval::budget`] steps per evaluation, calls nested at most
//! [`MAX_CALLS`] deep and expressions [`MAX_EXPR`] deep; packages and buffers created by code
//! are capped at [`MAX_ELEMENTS`]. A write is only ever to a local, an argument or a named
//! data object of this evaluator's own copy of the namespace: firmware state and hardware are
//! never touched.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::Cursor;
use crate::name::{Path, is_name_start, name_string};
use crate::namespace::{Kind, MAX_NEST, Namespace};

/// A value AML computes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Value {
    #[default]
    Uninitialized,
    Integer(u64),
    String(String),
    Buffer(Vec<u8>),
    Package(Vec<Value>),
    /// A reference to a namespace object that is not data (a device, in a `_PRT` entry).
    Ref(Path),
}

impl Value {
    pub fn as_integer(&self) -> Option<u64> {
        match self {
            Value::Integer(v) => Some(*v),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Uninitialized => "uninitialized",
            Value::Integer(_) => "integer",
            Value::String(_) => "string",
            Value::Buffer(_) => "buffer",
            Value::Package(_) => "package",
            Value::Ref(_) => "object reference",
        }
    }
}

/// Deepest method call nesting.
pub const MAX_CALLS: usize = 16;
/// Deepest expression nesting.
pub const MAX_EXPR: usize = 48;
/// Largest package or buffer code may create.
pub const MAX_ELEMENTS: usize = 4096;

/// How a statement list ended.
enum Flow {
    Next,
    Return(Value),
    Break,
    Continue,
}

/// A place a value is stored to.
#[derive(Debug)]
enum Target {
    Null,
    Local(usize),
    Arg(usize),
    Name(Path),
    Index(Box<Target>, u64),
}

struct Frame {
    scope: Path,
    locals: [Value; 8],
    args: [Value; 7],
    calls: usize,
}

impl Frame {
    fn new(scope: Path, calls: usize) -> Frame {
        Frame {
            scope,
            locals: Default::default(),
            args: Default::default(),
            calls,
        }
    }
}

/// An evaluator over one namespace. Named data written by methods (`\PICF` by `\_PIC`) is
/// kept here, so later evaluations see it, as on a running system.
#[derive(Debug)]
pub struct Eval<'n, 'a> {
    ns: &'n Namespace<'a>,
    written: BTreeMap<Path, Value>,
    steps: u32,
    /// Steps allowed per [`Eval::evaluate`].
    pub budget: u32,
}

type R<T> = Result<T, String>;

impl<'n, 'a> Eval<'n, 'a> {
    pub fn new(ns: &'n Namespace<'a>) -> Self {
        Eval {
            ns,
            written: BTreeMap::new(),
            steps: 0,
            budget: 200_000,
        }
    }

    fn mask(&self) -> u64 {
        if self.ns.wide {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// Evaluates the object at `path`: a named data object's value, a method's return value
    /// (called with `args`), or a reference for anything else. `Ok(None)`: no such object.
    pub fn evaluate(&mut self, path: &Path, args: &[Value]) -> R<Option<Value>> {
        if self.ns.get(path).is_none() {
            return Ok(None);
        }
        self.steps = 0;
        self.object(path, args, 0).map(Some)
    }

    /// Evaluates `path` to an integer (`None`: no such object).
    pub fn integer(&mut self, path: &Path) -> R<Option<u64>> {
        match self.evaluate(path, &[])? {
            None => Ok(None),
            Some(Value::Integer(v)) => Ok(Some(v)),
            Some(v) => Err(format!("{path} is a {}, not an integer", v.kind())),
        }
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > self.budget {
            return Err(format!(
                "evaluation stopped after {} steps (a loop that does not end?)",
                self.budget
            ));
        }
        Ok(())
    }

    fn object(&mut self, path: &Path, args: &[Value], calls: usize) -> R<Value> {
        let Some(obj) = self.ns.get(path) else {
            return Err(format!("{path} not found"));
        };
        match obj.kind.clone() {
            Kind::Name(bytes) => {
                if let Some(v) = self.written.get(path) {
                    return Ok(v.clone());
                }
                let mut f = Frame::new(path.parent().unwrap_or_default(), calls);
                let mut c = Cursor::new(bytes);
                self.term(&mut c, &mut f, 0)
            }
            Kind::Method { args: n, body } => {
                if calls >= MAX_CALLS {
                    return Err(format!("{path}: calls nested deeper than {MAX_CALLS}"));
                }
                if args.len() != usize::from(n) {
                    return Err(format!("{path} takes {n} arguments, {} given", args.len()));
                }
                let mut f = Frame::new(path.clone(), calls + 1);
                for (i, a) in args.iter().enumerate() {
                    f.args[i] = a.clone();
                }
                let mut c = Cursor::new(body);
                match self
                    .statements(&mut c, &mut f, 0)
                    .map_err(|e| format!("{path}: {e}"))?
                {
                    Flow::Return(v) => Ok(v),
                    _ => Ok(Value::Uninitialized),
                }
            }
            Kind::Field => Err(format!(
                "{path} is a field of an operation region (hardware access): not evaluated"
            )),
            _ => Ok(Value::Ref(path.clone())),
        }
    }

    fn statements(&mut self, c: &mut Cursor<'_>, f: &mut Frame, depth: usize) -> R<Flow> {
        while !c.at_end() {
            let at = c.pos;
            let flow = self.statement(c, f, depth).map_err(|e| {
                if e.contains(" at 0x") {
                    e
                } else {
                    format!("{e} at {at:#x}")
                }
            })?;
            if !matches!(flow, Flow::Next) {
                return Ok(flow);
            }
        }
        Ok(Flow::Next)
    }

    fn statement(&mut self, c: &mut Cursor<'_>, f: &mut Frame, depth: usize) -> R<Flow> {
        self.step()?;
        if depth > MAX_EXPR {
            return Err(format!("blocks nested deeper than {MAX_EXPR}"));
        }
        match c.peek()? {
            0xa0 => {
                c.u8()?;
                let end = c.pkg_end()?;
                let mut body = c.sub(end);
                let taken = self.int(&mut body, f, depth + 1)? != 0;
                let mut flow = Flow::Next;
                if taken {
                    flow = self.statements(&mut body, f, depth + 1)?;
                }
                if c.peek().ok() == Some(0xa1) {
                    c.u8()?;
                    let end = c.pkg_end()?;
                    let mut body = c.sub(end);
                    if !taken {
                        flow = self.statements(&mut body, f, depth + 1)?;
                    }
                }
                Ok(flow)
            }
            0xa2 => {
                c.u8()?;
                let end = c.pkg_end()?;
                let body = c.sub(end);
                loop {
                    self.step()?;
                    let mut b = body.clone();
                    if self.int(&mut b, f, depth + 1)? == 0 {
                        break;
                    }
                    match self.statements(&mut b, f, depth + 1)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        Flow::Next | Flow::Continue => {}
                    }
                }
                Ok(Flow::Next)
            }
            0xa4 => {
                c.u8()?;
                Ok(Flow::Return(self.term(c, f, depth + 1)?))
            }
            0xa5 => {
                c.u8()?;
                Ok(Flow::Break)
            }
            0x9f => {
                c.u8()?;
                Ok(Flow::Continue)
            }
            0xa3 => {
                c.u8()?;
                Ok(Flow::Next)
            }
            _ => {
                self.term(c, f, depth + 1)?;
                Ok(Flow::Next)
            }
        }
    }

    fn int(&mut self, c: &mut Cursor<'_>, f: &mut Frame, depth: usize) -> R<u64> {
        match self.term(c, f, depth)? {
            Value::Integer(v) => Ok(v),
            // Implicit conversion of a buffer to an integer (§19.3.5.7): little-endian.
            Value::Buffer(b) => Ok(b
                .iter()
                .take(8)
                .rev()
                .fold(0u64, |a, &x| (a << 8) | u64::from(x))),
            v => Err(format!("an integer was expected, found a {}", v.kind())),
        }
    }

    /// One term argument (an expression) and its value.
    fn term(&mut self, c: &mut Cursor<'_>, f: &mut Frame, depth: usize) -> R<Value> {
        self.step()?;
        if depth > MAX_EXPR {
            return Err(format!("expressions nested deeper than {MAX_EXPR}"));
        }
        let at = c.pos;
        let op = c.peek()?;
        if is_name_start(op) {
            return self.name_value(c, f, depth);
        }
        c.u8()?;
        let mask = self.mask();
        let d = depth + 1;
        Ok(match op {
            0x00 => Value::Integer(0),
            0x01 => Value::Integer(1),
            0xff => Value::Integer(mask),
            0x0a => Value::Integer(c.le(1)?),
            0x0b => Value::Integer(c.le(2)?),
            0x0c => Value::Integer(c.le(4)?),
            0x0e => Value::Integer(c.le(8)? & mask),
            0x0d => {
                let start = c.pos;
                while c.u8()? != 0 {}
                Value::String(String::from_utf8_lossy(&c.bytes[start..c.pos - 1]).into_owned())
            }
            0x11 => {
                let end = c.pkg_end()?;
                let mut b = c.sub(end);
                let size = usize::try_from(self.int(&mut b, f, d)?).unwrap_or(usize::MAX);
                if size > MAX_ELEMENTS * 16 {
                    return Err(format!("buffer of {size} bytes at {at:#x}: too large"));
                }
                let init = &b.bytes[b.pos..];
                let mut v = vec![0u8; size.max(init.len())];
                v[..init.len()].copy_from_slice(init);
                Value::Buffer(v)
            }
            0x12 | 0x13 => {
                let end = c.pkg_end()?;
                let mut b = c.sub(end);
                let n = if op == 0x12 {
                    u64::from(b.u8()?)
                } else {
                    self.int(&mut b, f, d)?
                };
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_ELEMENTS {
                    return Err(format!("package of {n} elements at {at:#x}: too large"));
                }
                let mut elems = Vec::new();
                while !b.at_end() {
                    if elems.len() >= MAX_ELEMENTS || depth > MAX_NEST {
                        return Err(format!("package at {at:#x}: too large or too deep"));
                    }
                    elems.push(self.element(&mut b, f, d)?);
                }
                if elems.len() < n {
                    elems.resize(n, Value::Uninitialized);
                }
                Value::Package(elems)
            }
            0x60..=0x67 => f.locals[usize::from(op - 0x60)].clone(),
            0x68..=0x6e => f.args[usize::from(op - 0x68)].clone(),
            0x70 => {
                let v = self.term(c, f, d)?;
                let t = self.target(c, f, d)?;
                self.store(&t, v.clone(), f)?;
                v
            }
            0x72 | 0x74 | 0x77 | 0x79 | 0x7a | 0x7b | 0x7c | 0x7d | 0x7e | 0x7f | 0x85 => {
                let a = self.int(c, f, d)?;
                let b = self.int(c, f, d)?;
                let r = match op {
                    0x72 => a.wrapping_add(b),
                    0x74 => a.wrapping_sub(b),
                    0x77 => a.wrapping_mul(b),
                    0x79 => a
                        .checked_shl(u32::try_from(b).unwrap_or(u32::MAX))
                        .unwrap_or(0),
                    0x7a => a
                        .checked_shr(u32::try_from(b).unwrap_or(u32::MAX))
                        .unwrap_or(0),
                    0x7b => a & b,
                    0x7c => !(a & b),
                    0x7d => a | b,
                    0x7e => !(a | b),
                    0x7f => a ^ b,
                    _ => {
                        if b == 0 {
                            return Err(format!("Mod by zero at {at:#x}"));
                        }
                        a % b
                    }
                } & mask;
                let t = self.target(c, f, d)?;
                self.store(&t, Value::Integer(r), f)?;
                Value::Integer(r)
            }
            0x78 => {
                let a = self.int(c, f, d)?;
                let b = self.int(c, f, d)?;
                if b == 0 {
                    return Err(format!("Divide by zero at {at:#x}"));
                }
                let rem = self.target(c, f, d)?;
                self.store(&rem, Value::Integer(a % b), f)?;
                let quot = self.target(c, f, d)?;
                self.store(&quot, Value::Integer(a / b), f)?;
                Value::Integer(a / b)
            }
            0x80 => {
                let r = !self.int(c, f, d)? & mask;
                let t = self.target(c, f, d)?;
                self.store(&t, Value::Integer(r), f)?;
                Value::Integer(r)
            }
            0x75 | 0x76 => {
                let t = self.target(c, f, d)?;
                let v = match self.read(&t, f)? {
                    Value::Integer(v) => v,
                    v => return Err(format!("Increment of a {} at {at:#x}", v.kind())),
                };
                let r = if op == 0x75 {
                    v.wrapping_add(1)
                } else {
                    v.wrapping_sub(1)
                } & mask;
                self.store(&t, Value::Integer(r), f)?;
                Value::Integer(r)
            }
            0x90 | 0x91 => {
                let a = self.int(c, f, d)? != 0;
                let b = self.int(c, f, d)? != 0;
                bool_value(if op == 0x90 { a && b } else { a || b }, mask)
            }
            0x92 => {
                let a = self.int(c, f, d)?;
                bool_value(a == 0, mask)
            }
            0x93..=0x95 => {
                let a = self.term(c, f, d)?;
                let b = self.term(c, f, d)?;
                let ord = match (&a, &b) {
                    (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
                    (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
                    (Value::Buffer(x), Value::Buffer(y)) => x.cmp(y),
                    _ => {
                        return Err(format!(
                            "comparison of a {} with a {} at {at:#x}",
                            a.kind(),
                            b.kind()
                        ));
                    }
                };
                let r = match op {
                    0x93 => ord.is_eq(),
                    0x94 => ord.is_gt(),
                    _ => ord.is_lt(),
                };
                bool_value(r, mask)
            }
            0x88 => {
                let src = self.term(c, f, d)?;
                let i = self.int(c, f, d)?;
                let t = self.target(c, f, d)?;
                if !matches!(t, Target::Null) {
                    return Err(format!("Index with a target at {at:#x} not supported"));
                }
                element_of(&src, i).map_err(|e| format!("{e} at {at:#x}"))?
            }
            0x83 => match self.term(c, f, d)? {
                Value::Ref(p) => self.object(&p, &[], f.calls)?,
                v => v,
            },
            0x87 => {
                let t = self.target(c, f, d)?;
                let n = match self.read(&t, f)? {
                    Value::String(s) => s.len(),
                    Value::Buffer(b) => b.len(),
                    Value::Package(p) => p.len(),
                    v => return Err(format!("SizeOf a {} at {at:#x}", v.kind())),
                };
                Value::Integer(n as u64)
            }
            0x99 => {
                let v = self.int(c, f, d)?;
                let t = self.target(c, f, d)?;
                self.store(&t, Value::Integer(v), f)?;
                Value::Integer(v)
            }
            0x5b => match c.u8()? {
                0x30 => Value::Integer(2),
                0x12 => {
                    let name = name_string(c)?;
                    let found = self.ns.resolve(&f.scope, &name).is_some();
                    let t = self.target(c, f, d)?;
                    if !matches!(t, Target::Null) {
                        return Err(format!("CondRefOf with a target at {at:#x} not supported"));
                    }
                    bool_value(found, mask)
                }
                x => return Err(format!("opcode 0x5b {x:#04x} at {at:#x} not supported")),
            },
            _ => return Err(format!("opcode {op:#04x} at {at:#x} not supported")),
        })
    }

    /// A package element: a name is a reference (resolved where the package is), not a call.
    fn element(&mut self, c: &mut Cursor<'_>, f: &mut Frame, depth: usize) -> R<Value> {
        if is_name_start(c.peek()?) {
            let name = name_string(c)?;
            return Ok(match self.ns.resolve(&f.scope, &name) {
                Some(p) => Value::Ref(p),
                None => Value::String(name.to_string()),
            });
        }
        self.term(c, f, depth)
    }

    fn name_value(&mut self, c: &mut Cursor<'_>, f: &mut Frame, depth: usize) -> R<Value> {
        let at = c.pos;
        let name = name_string(c)?;
        let Some(path) = self.ns.resolve(&f.scope, &name) else {
            return Err(format!("{name} (at {at:#x}) not found from {}", f.scope));
        };
        let args = match self.ns.get(&path).map(|o| &o.kind) {
            Some(Kind::Method { args, .. }) => {
                let mut v = Vec::new();
                for _ in 0..*args {
                    v.push(self.term(c, f, depth + 1)?);
                }
                v
            }
            _ => Vec::new(),
        };
        self.object(&path, &args, f.calls)
    }

    fn target(&mut self, c: &mut Cursor<'_>, f: &mut Frame, depth: usize) -> R<Target> {
        let at = c.pos;
        let op = c.peek()?;
        if is_name_start(op) {
            let name = name_string(c)?;
            let path = self
                .ns
                .resolve(&f.scope, &name)
                .ok_or_else(|| format!("store to {name} (at {at:#x}): not found"))?;
            return Ok(Target::Name(path));
        }
        c.u8()?;
        Ok(match op {
            0x00 => Target::Null,
            0x60..=0x67 => Target::Local(usize::from(op - 0x60)),
            0x68..=0x6e => Target::Arg(usize::from(op - 0x68)),
            0x5b if c.peek()? == 0x31 => {
                c.u8()?;
                Target::Null
            }
            0x88 => {
                let src = self.target(c, f, depth + 1)?;
                let i = self.int(c, f, depth + 1)?;
                let inner = self.target(c, f, depth + 1)?;
                if !matches!(inner, Target::Null) {
                    return Err(format!("Index with a target at {at:#x} not supported"));
                }
                Target::Index(Box::new(src), i)
            }
            _ => return Err(format!("target opcode {op:#04x} at {at:#x} not supported")),
        })
    }

    fn read(&mut self, t: &Target, f: &mut Frame) -> R<Value> {
        Ok(match t {
            Target::Null => Value::Uninitialized,
            Target::Local(i) => f.locals[*i].clone(),
            Target::Arg(i) => f.args[*i].clone(),
            Target::Name(p) => self.object(p, &[], f.calls)?,
            Target::Index(src, i) => {
                let v = self.read(src, f)?;
                element_of(&v, *i)?
            }
        })
    }

    fn store(&mut self, t: &Target, v: Value, f: &mut Frame) -> R<()> {
        match t {
            Target::Null => {}
            Target::Local(i) => f.locals[*i] = v,
            Target::Arg(i) => f.args[*i] = v,
            Target::Name(p) => match self.ns.get(p).map(|o| &o.kind) {
                Some(Kind::Name(_)) => {
                    self.written.insert(p.clone(), v);
                }
                Some(Kind::Field) => {
                    return Err(format!(
                        "store to {p}, a field of an operation region (hardware access): refused"
                    ));
                }
                _ => return Err(format!("store to {p}: not a named data object")),
            },
            Target::Index(src, i) => {
                // A local's or argument's package is changed in place (a loop filling a
                // 128-entry _PRT must not copy it on every store).
                if let Some(slot) = local_slot(src, f) {
                    return set_element(slot, *i, v);
                }
                let mut whole = self.read(src, f)?;
                set_element(&mut whole, *i, v)?;
                self.store(src, whole, f)?;
            }
        }
        Ok(())
    }
}

/// The local or argument (or an element of one) a target names, to change in place.
fn local_slot<'f>(t: &Target, f: &'f mut Frame) -> Option<&'f mut Value> {
    match t {
        Target::Local(i) => Some(&mut f.locals[*i]),
        Target::Arg(i) => Some(&mut f.args[*i]),
        Target::Index(src, i) => match local_slot(src, f)? {
            Value::Package(p) => p.get_mut(usize::try_from(*i).ok()?),
            _ => None,
        },
        _ => None,
    }
}

fn set_element(whole: &mut Value, i: u64, v: Value) -> R<()> {
    let i = usize::try_from(i).unwrap_or(usize::MAX);
    match whole {
        Value::Package(p) if i < p.len() => p[i] = v,
        Value::Buffer(b) if i < b.len() => {
            b[i] = v
                .as_integer()
                .ok_or("store of a non-integer into a buffer byte")? as u8;
        }
        other => return Err(format!("index {i} out of range of a {}", other.kind())),
    }
    Ok(())
}

fn bool_value(b: bool, mask: u64) -> Value {
    Value::Integer(if b { mask } else { 0 })
}

fn element_of(v: &Value, i: u64) -> R<Value> {
    let i = usize::try_from(i).unwrap_or(usize::MAX);
    match v {
        Value::Package(p) => p
            .get(i)
            .cloned()
            .ok_or_else(|| format!("index {i} out of a package of {}", p.len())),
        Value::Buffer(b) => b
            .get(i)
            .map(|&x| Value::Integer(u64::from(x)))
            .ok_or_else(|| format!("index {i} out of a buffer of {}", b.len())),
        v => Err(format!("Index into a {}", v.kind())),
    }
}

impl<'n, 'a> Eval<'n, 'a> {
    /// The namespace evaluated.
    pub fn namespace(&self) -> &'n Namespace<'a> {
        self.ns
    }
}
