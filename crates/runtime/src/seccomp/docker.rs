//! Docker's seccomp profile format, resolved against a container's capabilities and this
//! machine's architecture into an OCI `LinuxSeccomp`.
//!
//! A profile is `defaultAction` (with `defaultErrnoRet`), the architectures (`archMap` or
//! `architectures`) and `syscalls` entries: `names` (or the older `name`), `action`,
//! `errnoRet`, `args` and the `includes`/`excludes` conditions on capabilities (all listed
//! ones present / any present), architectures (Go's names: amd64, arm64, ...) and
//! `minKernel`. Unknown fields are ignored, as Docker does.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};
use serde_json::{Map, Value};

use super::bpf::native_arches;
use crate::error::RuntimeError;

fn bad(field: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::SeccompProfile {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Go's name for this machine's architecture, as profiles' `arches` conditions use it.
fn go_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

/// A capability name in Docker's spelling: `CAP_` and upper case.
pub(crate) fn cap_name(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn parse_version(field: &str, v: &str) -> Result<(u32, u32), RuntimeError> {
    let mut it = v.split('.');
    let num = |p: Option<&str>| p.and_then(|p| p.parse::<u32>().ok());
    match (num(it.next()), num(it.next().or(Some("0")))) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(bad(
            field,
            format!("{v:?} is not a kernel version like \"4.8\""),
        )),
    }
}

/// Typed access to one JSON object, naming the field in every error.
struct Obj<'a> {
    at: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    fn new(at: String, v: &'a Value) -> Result<Obj<'a>, RuntimeError> {
        match v {
            Value::Object(map) => Ok(Obj { at, map }),
            _ => Err(bad(&at, "expected an object")),
        }
    }

    fn field(&self, name: &str) -> String {
        if self.at.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.at)
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn str(&self, name: &str) -> Result<Option<&'a str>, RuntimeError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(&self.field(name), "expected a string")),
        }
    }

    fn u64(&self, name: &str) -> Result<Option<u64>, RuntimeError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(&self.field(name), "expected a non-negative integer")),
        }
    }

    fn array(&self, name: &str) -> Result<&'a [Value], RuntimeError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(bad(&self.field(name), "expected an array")),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<&'a str>, RuntimeError> {
        self.array(name)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| bad(&format!("{}[{i}]", self.field(name)), "expected a string"))
            })
            .collect()
    }
}

fn action(field: &str, s: &str) -> Result<LinuxSeccompAction, RuntimeError> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| bad(field, format!("unknown action {s:?}")))
}

fn arch(field: &str, s: &str) -> Result<Arch, RuntimeError> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| bad(field, format!("unknown architecture {s:?}")))
}

fn operator(field: &str, s: &str) -> Result<LinuxSeccompOperator, RuntimeError> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| bad(field, format!("unknown operator {s:?}")))
}

fn errno(o: &Obj<'_>, name: &str) -> Result<Option<u32>, RuntimeError> {
    o.u64(name)?
        .map(|v| u32::try_from(v).map_err(|_| bad(&o.field(name), "errno out of range")))
        .transpose()
}

/// Whether an `includes` (`all_needed`) or `excludes` condition holds here.
fn condition(o: &Obj<'_>, caps: &[String], includes: bool) -> Result<bool, RuntimeError> {
    let listed: Vec<String> = o.strings("caps")?.into_iter().map(cap_name).collect();
    let arches = o.strings("arches")?;
    let min_kernel = match o.str("minKernel")? {
        Some(v) => Some(parse_version(&o.field("minKernel"), v)?),
        None => None,
    };
    let arch_hit = arches.contains(&go_arch());
    Ok(if includes {
        listed.iter().all(|c| caps.contains(c))
            && (arches.is_empty() || arch_hit)
            && min_kernel.is_none_or(crate::kernel_at_least)
    } else {
        // An exclusion applies when any capability or architecture it names is here.
        listed.iter().any(|c| caps.contains(c)) || arch_hit
    })
}

fn syscall(o: &Obj<'_>, caps: &[String]) -> Result<Option<LinuxSyscall>, RuntimeError> {
    let mut names: Vec<String> = o.strings("names")?.into_iter().map(String::from).collect();
    if let Some(n) = o.str("name")? {
        names.push(n.to_owned());
    }
    if names.is_empty() {
        return Err(bad(&o.field("names"), "no syscall names"));
    }
    let act = o
        .str("action")?
        .ok_or_else(|| bad(&o.field("action"), "missing"))?;
    let act = action(&o.field("action"), act)?;
    let mut args = Vec::new();
    for (i, a) in o.array("args")?.iter().enumerate() {
        let a = Obj::new(format!("{}[{i}]", o.field("args")), a)?;
        let index = a.u64("index")?.unwrap_or(0);
        if index > 5 {
            return Err(bad(
                &a.field("index"),
                format!("{index} is out of range 0-5"),
            ));
        }
        let op = a.str("op")?.ok_or_else(|| bad(&a.field("op"), "missing"))?;
        let mut arg = LinuxSeccompArgBuilder::default()
            .index(index as usize)
            .value(a.u64("value")?.unwrap_or(0))
            .op(operator(&a.field("op"), op)?);
        if let Some(two) = a.u64("valueTwo")? {
            arg = arg.value_two(two);
        }
        args.push(arg.build().map_err(|e| bad(&a.at, e.to_string()))?);
    }
    if let Some(inc) = o.get("includes") {
        if !condition(&Obj::new(o.field("includes"), inc)?, caps, true)? {
            return Ok(None);
        }
    }
    if let Some(exc) = o.get("excludes") {
        if condition(&Obj::new(o.field("excludes"), exc)?, caps, false)? {
            return Ok(None);
        }
    }
    let mut s = LinuxSyscall::default();
    s.set_names(names);
    s.set_action(act);
    s.set_errno_ret(errno(o, "errnoRet")?);
    s.set_args((!args.is_empty()).then_some(args));
    Ok(Some(s))
}

/// The architectures a profile lists for this machine.
fn architectures(root: &Obj<'_>) -> Result<Vec<Arch>, RuntimeError> {
    let (native, _) = native_arches();
    for (i, entry) in root.array("archMap")?.iter().enumerate() {
        let e = Obj::new(format!("archMap[{i}]"), entry)?;
        let Some(main) = e.str("architecture")? else {
            return Err(bad(&e.field("architecture"), "missing"));
        };
        if arch(&e.field("architecture"), main)? != native {
            continue;
        }
        let mut out = vec![native];
        for (j, sub) in e.strings("subArchitectures")?.into_iter().enumerate() {
            out.push(arch(&format!("{}[{j}]", e.field("subArchitectures")), sub)?);
        }
        return Ok(out);
    }
    root.strings("architectures")?
        .into_iter()
        .enumerate()
        .map(|(i, a)| arch(&format!("architectures[{i}]"), a))
        .collect()
}

/// Parses a profile in Docker's JSON format and keeps the rules that apply to a container
/// with capabilities `caps` on this machine.
pub(crate) fn parse(text: &str, caps: &[String]) -> Result<LinuxSeccomp, RuntimeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| RuntimeError::SeccompProfile {
        field: "json".to_owned(),
        message: e.to_string(),
    })?;
    let caps: Vec<String> = caps.iter().map(|c| cap_name(c)).collect();
    let root = Obj::new(String::new(), &value)?;
    let default = root
        .str("defaultAction")?
        .ok_or_else(|| bad("defaultAction", "missing"))?;
    let mut out = LinuxSeccomp::default();
    out.set_default_action(action("defaultAction", default)?);
    out.set_default_errno_ret(errno(&root, "defaultErrnoRet")?);
    let arches = architectures(&root)?;
    out.set_architectures((!arches.is_empty()).then_some(arches));
    let mut syscalls = Vec::new();
    for (i, s) in root.array("syscalls")?.iter().enumerate() {
        if let Some(s) = syscall(&Obj::new(format!("syscalls[{i}]"), s)?, &caps)? {
            syscalls.push(s);
        }
    }
    out.set_syscalls(Some(syscalls));
    Ok(out)
}
