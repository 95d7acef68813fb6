//! Loading definition blocks (DSDT, SSDTs) into a flat namespace.
//!
//! Only the declarations are read: scopes, devices, processors, power resources, thermal
//! zones, named data objects (kept as their AML bytes), methods (kept as their bodies),
//! operation regions and field units (recorded so that code using them is refused by name),
//! mutexes, events, externals and aliases. Code at load time (`If` at block level) is not run,
//! and is reported. An opcode the loader does not know ends the loading of the scope it is in,
//! with a problem; the rest of the table is still loaded.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::Cursor;
use crate::name::{NameString, Path, name_string};

/// What a namespace object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A scope without an object of its own (`\_SB_`, `\_GPE`).
    Scope,
    Device,
    Processor,
    PowerResource,
    ThermalZone,
    /// `Name (X, data)`: the data object's AML bytes.
    Name(&'a [u8]),
    Method {
        args: u8,
        body: &'a [u8],
    },
    OperationRegion,
    /// A field unit of an operation region (reading it is hardware access: refused).
    Field,
    Mutex,
    Event,
    /// Declared elsewhere (`External`).
    External,
    Alias(Path),
}

/// One named object, with the table it was defined in (its signature and index).
#[derive(Debug, Clone)]
pub struct Object<'a> {
    pub kind: Kind<'a>,
    pub table: usize,
}

/// The namespace: objects by absolute path, and the order devices were defined in (the order
/// Linux's ACPI scan visits them).
#[derive(Debug, Default)]
pub struct Namespace<'a> {
    pub objects: BTreeMap<Path, Object<'a>>,
    pub devices: Vec<Path>,
    /// Tables loaded, by signature.
    pub tables: Vec<String>,
    /// What could not be loaded, each naming the table, scope and offset.
    pub problems: Vec<String>,
    /// Integers are 64 bits wide (the DSDT's revision is 2 or more; §5.2.11.1), else 32.
    pub wide: bool,
}

/// Deepest scope nesting the loader follows.
const MAX_DEPTH: usize = 64;

impl<'a> Namespace<'a> {
    pub fn new() -> Self {
        let mut ns = Namespace::default();
        for s in ["\\_SB_", "\\_GPE", "\\_PR_", "\\_SI_", "\\_TZ_"] {
            if let Some(p) = Path::parse(s) {
                ns.objects.insert(
                    p,
                    Object {
                        kind: Kind::Scope,
                        table: usize::MAX,
                    },
                );
            }
        }
        ns
    }

    /// Loads one definition block (the whole table, header included). A table too short
    /// for its header is refused; a problem inside it skips only the scope it is in.
    pub fn load(&mut self, table: &'a [u8]) {
        let sig = table
            .get(..4)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        let len = table
            .get(4..8)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let Some(len) = len.filter(|&l| (36..=table.len()).contains(&l)) else {
            self.problems.push(format!(
                "{sig}: length field out of range ({} bytes read); not loaded",
                table.len()
            ));
            return;
        };
        let idx = self.tables.len();
        if idx == 0 {
            self.wide = table[8] >= 2;
        }
        self.tables.push(sig.clone());
        let mut c = Cursor {
            bytes: &table[..len],
            pos: 36,
        };
        self.term_list(&mut c, &Path::root(), idx, &sig, 0);
    }

    pub fn get(&self, path: &Path) -> Option<&Object<'a>> {
        self.objects.get(path)
    }

    /// Resolves `name` used in `scope`, applying the search rules for a single segment
    /// (the scope, then each parent up to the root), and following aliases once.
    pub fn resolve(&self, scope: &Path, name: &NameString) -> Option<Path> {
        let found = if name.searches() {
            // One path, changed in place while walking up (this runs for every name a method
            // or package uses).
            let mut p = scope.clone();
            loop {
                p.0.push(name.segs[0]);
                if self.objects.contains_key(&p) {
                    break Some(p);
                }
                p.0.pop();
                p.0.pop()?;
            }
        } else {
            name.resolve_in(scope)
                .filter(|p| self.objects.contains_key(p))
        }?;
        match &self.objects.get(&found)?.kind {
            Kind::Alias(target) => Some(target.clone()),
            _ => Some(found),
        }
    }

    fn define(&mut self, path: Path, kind: Kind<'a>, table: usize, sig: &str, at: usize) {
        if let Some(old) = self.objects.get(&path) {
            // Scope-like objects may be opened again; anything else defined twice is an error
            // (ACPICA refuses AE_ALREADY_EXISTS) and the first definition stays.
            if !matches!(old.kind, Kind::Scope | Kind::External) {
                self.problems.push(format!(
                    "{sig}: {path} defined again at {at:#x}; the first definition is kept"
                ));
                return;
            }
        }
        if kind == Kind::Device {
            self.devices.push(path.clone());
        }
        self.objects.insert(path, Object { kind, table });
    }

    fn term_list(
        &mut self,
        c: &mut Cursor<'a>,
        scope: &Path,
        table: usize,
        sig: &str,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            self.problems.push(format!(
                "{sig}: {scope}: scopes nested deeper than {MAX_DEPTH}; skipped"
            ));
            return;
        }
        while !c.at_end() {
            let at = c.pos;
            if let Err(e) = self.term(c, scope, table, sig, depth) {
                self.problems.push(format!(
                    "{sig}: in {scope} at {at:#x}: {e}; the rest of this scope is skipped"
                ));
                return;
            }
        }
    }

    fn named_scope(
        &mut self,
        c: &mut Cursor<'a>,
        scope: &Path,
        kind: Kind<'a>,
        fixed: usize,
        ctx: (usize, &str, usize),
    ) -> Result<(), String> {
        let (table, sig, depth) = ctx;
        let at = c.pos;
        let end = c.pkg_end()?;
        let mut body = c.sub(end);
        let name = name_string(&mut body)?;
        let path = name
            .resolve_in(scope)
            .ok_or_else(|| format!("{name} goes above the root"))?;
        body.take(fixed)?;
        self.define(path.clone(), kind, table, sig, at);
        self.term_list(&mut body, &path, table, sig, depth + 1);
        Ok(())
    }

    fn term(
        &mut self,
        c: &mut Cursor<'a>,
        scope: &Path,
        table: usize,
        sig: &str,
        depth: usize,
    ) -> Result<(), String> {
        let at = c.pos;
        let op = c.u8()?;
        let ctx = (table, sig, depth);
        match op {
            0x10 => {
                // Scope: opens an existing object (or a predefined root scope).
                let end = c.pkg_end()?;
                let mut body = c.sub(end);
                let name = name_string(&mut body)?;
                let path = name
                    .resolve_in(scope)
                    .ok_or_else(|| format!("Scope ({name}) goes above the root"))?;
                if !self.objects.contains_key(&path) && !path.0.is_empty() {
                    self.define(path.clone(), Kind::Scope, table, sig, at);
                }
                self.term_list(&mut body, &path, table, sig, depth + 1);
            }
            0x08 => {
                let name = name_string(c)?;
                let start = c.pos;
                skip_data(c, 0)?;
                let path = name
                    .resolve_in(scope)
                    .ok_or_else(|| format!("Name ({name}) goes above the root"))?;
                self.define(path, Kind::Name(&c.bytes[start..c.pos]), table, sig, at);
            }
            0x14 => {
                let end = c.pkg_end()?;
                let mut body = c.sub(end);
                let name = name_string(&mut body)?;
                let flags = body.u8()?;
                let path = name
                    .resolve_in(scope)
                    .ok_or_else(|| format!("Method ({name}) goes above the root"))?;
                let code = &body.bytes[body.pos..end];
                self.define(
                    path,
                    Kind::Method {
                        args: flags & 7,
                        body: code,
                    },
                    table,
                    sig,
                    at,
                );
            }
            0x15 => {
                let name = name_string(c)?;
                c.take(2)?;
                if let Some(path) = name.resolve_in(scope) {
                    self.objects.entry(path).or_insert(Object {
                        kind: Kind::External,
                        table,
                    });
                }
            }
            0x06 => {
                let from = name_string(c)?;
                let to = name_string(c)?;
                if let (Some(f), Some(t)) = (from.resolve_in(scope), to.resolve_in(scope)) {
                    self.define(t, Kind::Alias(f), table, sig, at);
                }
            }
            0xa0 | 0xa1 => {
                // Code at load time (`If (CondRefOf (...))` around definitions): not run.
                let end = c.pkg_end()?;
                c.pos = end;
                self.problems.push(format!(
                    "{sig}: in {scope} at {at:#x}: {} at block level not evaluated; what it \
                     defines is absent",
                    if op == 0xa0 { "If" } else { "Else" }
                ));
            }
            0x5b => {
                let ext = c.u8()?;
                match ext {
                    0x82 => self.named_scope(c, scope, Kind::Device, 0, ctx)?,
                    0x83 => self.named_scope(c, scope, Kind::Processor, 6, ctx)?,
                    0x84 => self.named_scope(c, scope, Kind::PowerResource, 3, ctx)?,
                    0x85 => self.named_scope(c, scope, Kind::ThermalZone, 0, ctx)?,
                    0x80 => {
                        let name = name_string(c)?;
                        c.u8()?;
                        skip_term(c, 0)?;
                        skip_term(c, 0)?;
                        if let Some(p) = name.resolve_in(scope) {
                            self.define(p, Kind::OperationRegion, table, sig, at);
                        }
                    }
                    0x81 => {
                        let end = c.pkg_end()?;
                        let mut body = c.sub(end);
                        name_string(&mut body)?;
                        body.u8()?;
                        self.field_list(&mut body, scope, table, sig)?;
                    }
                    0x86 | 0x87 => {
                        // IndexField and BankField: their units are refused like any field.
                        let end = c.pkg_end()?;
                        let mut body = c.sub(end);
                        name_string(&mut body)?;
                        name_string(&mut body)?;
                        if ext == 0x87 {
                            skip_term(&mut body, 0)?;
                        }
                        body.u8()?;
                        self.field_list(&mut body, scope, table, sig)?;
                    }
                    0x01 => {
                        let name = name_string(c)?;
                        c.u8()?;
                        if let Some(p) = name.resolve_in(scope) {
                            self.define(p, Kind::Mutex, table, sig, at);
                        }
                    }
                    0x02 => {
                        let name = name_string(c)?;
                        if let Some(p) = name.resolve_in(scope) {
                            self.define(p, Kind::Event, table, sig, at);
                        }
                    }
                    _ => return Err(format!("opcode 0x5b {ext:#04x} not understood")),
                }
            }
            _ => return Err(format!("opcode {op:#04x} not understood")),
        }
        Ok(())
    }

    fn field_list(
        &mut self,
        c: &mut Cursor<'a>,
        scope: &Path,
        table: usize,
        sig: &str,
    ) -> Result<(), String> {
        while !c.at_end() {
            let at = c.pos;
            match c.peek()? {
                0x00 => {
                    c.u8()?;
                    bit_length(c)?;
                }
                0x01 => {
                    c.take(3)?;
                }
                0x02 => {
                    // ConnectField: a buffer or a name.
                    c.u8()?;
                    if c.peek()? == 0x11 {
                        skip_term(c, 0)?;
                    } else {
                        name_string(c)?;
                    }
                }
                0x03 => {
                    c.take(4)?;
                }
                _ => {
                    let seg = crate::name::name_string(c)?;
                    bit_length(c)?;
                    if let Some(p) = seg.resolve_in(scope) {
                        self.define(p, Kind::Field, table, sig, at);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A field's bit length: a PkgLength-encoded number not tied to the bytes that follow.
fn bit_length(c: &mut Cursor<'_>) -> Result<(), String> {
    let lead = c.u8()?;
    c.take(usize::from(lead >> 6))?;
    Ok(())
}

/// Deepest data nesting accepted (packages in packages).
pub(crate) const MAX_NEST: usize = 32;

/// Skips one data object (a `Name`'s value): constants, strings, buffers, packages.
pub(crate) fn skip_data(c: &mut Cursor<'_>, depth: usize) -> Result<(), String> {
    if depth > MAX_NEST {
        return Err(format!("data nested deeper than {MAX_NEST}"));
    }
    let at = c.pos;
    match c.u8()? {
        0x00 | 0x01 | 0xff => {}
        0x0a => {
            c.take(1)?;
        }
        0x0b => {
            c.take(2)?;
        }
        0x0c => {
            c.take(4)?;
        }
        0x0e => {
            c.take(8)?;
        }
        0x0d => while c.u8()? != 0 {},
        0x11..=0x13 => {
            let end = c.pkg_end()?;
            c.pos = end;
        }
        0x5b if c.peek()? == 0x30 => c.pos += 1,
        op => {
            return Err(format!(
                "data object opcode {op:#04x} at {at:#x} not understood"
            ));
        }
    }
    Ok(())
}

/// Skips one term argument at load time (an operation region's offset or length): data,
/// a name, or a package-length-delimited expression is not known; constants and names are.
pub(crate) fn skip_term(c: &mut Cursor<'_>, depth: usize) -> Result<(), String> {
    let b = c.peek()?;
    if crate::name::is_name_start(b) {
        name_string(c)?;
        return Ok(());
    }
    if (0x60..=0x6e).contains(&b) {
        c.u8()?;
        return Ok(());
    }
    skip_data(c, depth)
}
