//! The part of Go's `text/template` that scripts written for Docker's `--format` use, over JSON
//! values: fields (`.A.B`, `.`), pipelines (`.X | upper`), parentheses, string and number
//! literals, `{{if}}`/`{{else}}`/`{{end}}`, `{{range}}` (with `{{else}}`), `{{with}}`, the
//! `{{-`/`-}}` trim markers, Go's functions `index`, `len`, `print`, `println`, `printf`, `eq`,
//! `ne`, `not`, `and`, `or`, and Docker's `json`, `join`, `split`, `lower`, `upper`, `title`.

use anyhow::{bail, Result};
use serde_json::Value;

/// A parsed template.
#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// Commands joined by `|`; each result is the last argument of the next.
#[derive(Debug)]
pub struct Pipeline(Vec<Cmd>);

#[derive(Debug)]
struct Cmd {
    func: Option<String>,
    args: Vec<Arg>,
}

#[derive(Debug)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Sub(Pipeline),
}

const FUNCS: [&str; 17] = [
    "json", "join", "split", "lower", "upper", "title", "index", "len", "print", "println",
    "printf", "eq", "ne", "not", "and", "or", "truncate",
];

/// Parses `src`; errors name the template, as Go's do.
pub fn parse(src: &str) -> Result<Vec<Node>> {
    let items = lex(src)?;
    let mut pos = 0;
    let (nodes, end) = parse_list(&items, &mut pos, src)?;
    if let Some(kw) = end {
        bail!("template parsing error: unexpected {{{{{kw}}}}} in {src:?}");
    }
    Ok(nodes)
}

enum Item {
    Text(String),
    Action(String),
}

/// Splits `src` into text and actions, applying the trim markers.
fn lex(src: &str) -> Result<Vec<Item>> {
    let mut items: Vec<Item> = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        let Some(len) = rest[start..].find("}}") else {
            bail!("template parsing error: unclosed action in {src:?}");
        };
        let mut action = &rest[start + 2..start + len];
        if let Some(a) = action.strip_prefix("- ") {
            text = text.trim_end().to_string();
            action = a;
        }
        let trim_after = action.ends_with(" -");
        if trim_after {
            action = &action[..action.len() - 2];
        }
        if !text.is_empty() {
            items.push(Item::Text(text));
        }
        items.push(Item::Action(action.trim().to_string()));
        rest = &rest[start + len + 2..];
        if trim_after {
            rest = rest.trim_start();
        }
    }
    if !rest.is_empty() {
        items.push(Item::Text(rest.to_string()));
    }
    Ok(items)
}

/// Nodes up to an `{{else}}` or `{{end}}`, which is returned.
fn parse_list(items: &[Item], pos: &mut usize, src: &str) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *pos < items.len() {
        let item = &items[*pos];
        *pos += 1;
        let action = match item {
            Item::Text(t) => {
                nodes.push(Node::Text(t.clone()));
                continue;
            }
            Item::Action(a) => a.as_str(),
        };
        let (word, rest) = action
            .split_once(char::is_whitespace)
            .map_or((action, ""), |(w, r)| (w, r.trim()));
        match word {
            "end" | "else" => return Ok((nodes, Some(word.to_string()))),
            "if" | "range" | "with" => {
                let pipe = parse_pipeline(rest, src)?;
                let (body, end) = parse_list(items, pos, src)?;
                let otherwise = match end.as_deref() {
                    Some("else") => match parse_list(items, pos, src)? {
                        (nodes, Some(e)) if e == "end" => nodes,
                        _ => bail!("template parsing error: missing {{{{end}}}} in {src:?}"),
                    },
                    Some(_) => Vec::new(),
                    None => bail!("template parsing error: missing {{{{end}}}} in {src:?}"),
                };
                nodes.push(match word {
                    "if" => Node::If(pipe, body, otherwise),
                    "range" => Node::Range(pipe, body, otherwise),
                    _ => Node::With(pipe, body, otherwise),
                });
            }
            _ => nodes.push(Node::Action(parse_pipeline(action, src)?)),
        }
    }
    Ok((nodes, None))
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Pipe,
    Open,
    Close,
}

fn tokens(s: &str, src: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '|' => {
                chars.next();
                out.push(Tok::Pipe);
            }
            '(' => {
                chars.next();
                out.push(Tok::Open);
            }
            ')' => {
                chars.next();
                out.push(Tok::Close);
            }
            '"' | '`' => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next() {
                        None => bail!("template parsing error: unterminated string in {src:?}"),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some(x) => v.push(x),
                            None => bail!("template parsing error: unterminated string in {src:?}"),
                        },
                        Some(x) => v.push(x),
                    }
                }
                out.push(Tok::Str(v));
            }
            _ => {
                let mut w = String::new();
                while let Some(&x) = chars.peek() {
                    if x.is_whitespace() || matches!(x, '|' | '(' | ')' | '"') {
                        break;
                    }
                    w.push(x);
                    chars.next();
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

fn parse_pipeline(s: &str, src: &str) -> Result<Pipeline> {
    let toks = tokens(s, src)?;
    let mut pos = 0;
    let p = pipeline(&toks, &mut pos, src)?;
    if pos != toks.len() {
        bail!(
            "template parsing error: unexpected {:?} in {src:?}",
            toks[pos]
        );
    }
    Ok(p)
}

fn pipeline(toks: &[Tok], pos: &mut usize, src: &str) -> Result<Pipeline> {
    let mut cmds = Vec::new();
    loop {
        let mut func = None;
        let mut args = Vec::new();
        while *pos < toks.len() && !matches!(toks[*pos], Tok::Pipe | Tok::Close) {
            let t = &toks[*pos];
            *pos += 1;
            args.push(match t {
                Tok::Str(s) => Arg::Str(s.clone()),
                Tok::Open => {
                    let sub = pipeline(toks, pos, src)?;
                    if toks.get(*pos) != Some(&Tok::Close) {
                        bail!("template parsing error: unclosed '(' in {src:?}");
                    }
                    *pos += 1;
                    Arg::Sub(sub)
                }
                Tok::Word(w) if w.starts_with('.') => Arg::Field(
                    w.split('.')
                        .filter(|p| !p.is_empty())
                        .map(String::from)
                        .collect(),
                ),
                Tok::Word(w) if w == "true" || w == "false" => Arg::Bool(w == "true"),
                Tok::Word(w) if w.parse::<f64>().is_ok() => Arg::Num(w.parse()?),
                Tok::Word(w) if args.is_empty() && func.is_none() => {
                    if !FUNCS.contains(&w.as_str()) {
                        bail!("template parsing error: function {w:?} not defined in {src:?}");
                    }
                    func = Some(w.clone());
                    continue;
                }
                other => bail!("template parsing error: unexpected {other:?} in {src:?}"),
            });
        }
        if func.is_none() && args.len() != 1 {
            bail!("template parsing error: empty or ambiguous command in {src:?}");
        }
        cmds.push(Cmd { func, args });
        if toks.get(*pos) == Some(&Tok::Pipe) {
            *pos += 1;
            continue;
        }
        return Ok(Pipeline(cmds));
    }
}

/// Renders `nodes` with `dot` as `.`.
pub fn render(nodes: &[Node], dot: &Value, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&plain(&eval(p, dot)?)),
            Node::If(p, then, otherwise) => {
                let branch = if truthy(&eval(p, dot)?) {
                    then
                } else {
                    otherwise
                };
                render(branch, dot, out)?;
            }
            Node::With(p, then, otherwise) => {
                let v = eval(p, dot)?;
                if truthy(&v) {
                    render(then, &v, out)?;
                } else {
                    render(otherwise, dot, out)?;
                }
            }
            Node::Range(p, body, otherwise) => {
                let items: Vec<Value> = match eval(p, dot)? {
                    Value::Array(a) => a,
                    Value::Object(o) => o.into_iter().map(|(_, v)| v).collect(),
                    Value::Null => Vec::new(),
                    other => bail!("template: range can't iterate over {}", plain(&other)),
                };
                if items.is_empty() {
                    render(otherwise, dot, out)?;
                }
                for v in &items {
                    render(body, v, out)?;
                }
            }
        }
    }
    Ok(())
}

/// The field that names an action's column in a `table` header: the last field of its
/// pipeline (`{{.Names}}`, `{{json .Labels}}`, `{{.Name | upper}}`).
pub fn header_field(p: &Pipeline) -> Option<&str> {
    p.0.iter().rev().find_map(|c| {
        c.args.iter().rev().find_map(|a| match a {
            Arg::Field(path) => path.last().map(String::as_str),
            _ => None,
        })
    })
}

fn eval(p: &Pipeline, dot: &Value) -> Result<Value> {
    let mut prev: Option<Value> = None;
    for c in &p.0 {
        let mut args = c
            .args
            .iter()
            .map(|a| arg(a, dot))
            .collect::<Result<Vec<_>>>()?;
        args.extend(prev.take());
        prev = Some(match &c.func {
            None if args.len() == 1 => args.pop().unwrap_or(Value::Null),
            None => bail!("template: can't give an argument to a non-function"),
            Some(f) => call(f, args)?,
        });
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn arg(a: &Arg, dot: &Value) -> Result<Value> {
    Ok(match a {
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(n) => serde_json::json!(n),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Sub(p) => eval(p, dot)?,
        Arg::Field(path) => {
            let mut cur = dot;
            for p in path {
                cur = match cur.get(p) {
                    Some(x) => x,
                    None => bail!(
                        "template: can't evaluate field {p} (known fields: {})",
                        known(cur)
                    ),
                };
            }
            cur.clone()
        }
    })
}

fn call(f: &str, args: Vec<Value>) -> Result<Value> {
    let want = |n: usize| -> Result<()> {
        if args.len() != n {
            bail!(
                "template: wrong number of args for {f}: want {n} got {}",
                args.len()
            );
        }
        Ok(())
    };
    let s = |v: &Value| plain(v);
    Ok(match f {
        "json" => {
            want(1)?;
            Value::String(serde_json::to_string(&args[0])?)
        }
        "lower" | "upper" | "title" => {
            want(1)?;
            let v = s(&args[0]);
            Value::String(match f {
                "lower" => v.to_lowercase(),
                "upper" => v.to_uppercase(),
                _ => v
                    .split(' ')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_uppercase().chain(c).collect())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<String>>()
                    .join(" "),
            })
        }
        "join" => {
            want(2)?;
            let items = args[0].as_array().cloned().unwrap_or_default();
            Value::String(
                items
                    .iter()
                    .map(plain)
                    .collect::<Vec<_>>()
                    .join(&s(&args[1])),
            )
        }
        "split" => {
            want(2)?;
            let parts = s(&args[0]);
            let sep = s(&args[1]);
            Value::Array(
                parts
                    .split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            )
        }
        "truncate" => {
            want(2)?;
            let n = args[1].as_f64().unwrap_or(0.0) as usize;
            Value::String(s(&args[0]).chars().take(n).collect())
        }
        "index" => {
            let mut it = args.into_iter();
            let mut cur = it.next().unwrap_or(Value::Null);
            for k in it {
                cur = match (&cur, &k) {
                    (Value::Array(a), Value::Number(n)) => a
                        .get(n.as_f64().unwrap_or(-1.0) as usize)
                        .cloned()
                        .unwrap_or(Value::Null),
                    (Value::Object(o), _) => o
                        .get(&plain(&k))
                        .cloned()
                        .unwrap_or(Value::String(String::new())),
                    (Value::Null, _) => Value::String(String::new()),
                    _ => bail!("template: can't index item of type {}", kind(&cur)),
                };
            }
            cur
        }
        "len" => {
            want(1)?;
            let n = match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::String(t) => t.len(),
                Value::Null => 0,
                other => bail!("template: len of type {}", kind(other)),
            };
            serde_json::json!(n)
        }
        "print" => Value::String(args.iter().map(plain).collect()),
        "println" => Value::String(args.iter().map(plain).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            let (fmt, rest) = args
                .split_first()
                .map_or((String::new(), &[][..]), |(f, r)| (s(f), r));
            Value::String(printf(&fmt, rest))
        }
        "eq" => Value::Bool(args.len() >= 2 && args[1..].iter().any(|a| same(&args[0], a))),
        "ne" => {
            want(2)?;
            Value::Bool(!same(&args[0], &args[1]))
        }
        "not" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        // Go returns the first falsy (and) or truthy (or) argument, else the last.
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        _ => bail!("template: function {f:?} not defined"),
    })
}

/// `%s`, `%v`, `%d`, `%q` and `%%`, the verbs format strings in scripts use.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&format!("{:?}", args.next().map(plain).unwrap_or_default())),
            Some(_) => out.push_str(&args.next().map(plain).unwrap_or_default()),
            None => out.push('%'),
        }
    }
    out
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn known(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o.keys().cloned().collect::<Vec<_>>().join(", "),
        None => "none".into(),
    }
}

/// Go's `%v` of a JSON value: strings bare, lists as `[a b]`, objects as `map[k:v]`.
pub fn plain(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(plain).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", plain(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        let nodes = parse(t).unwrap();
        let mut out = String::new();
        render(&nodes, v, &mut out).unwrap();
        out
    }

    #[test]
    fn what_docker_scripts_write() {
        let v = json!({
            "Name": "/web",
            "State": {"Running": true, "ExitCode": 0, "Pid": 42},
            "Config": {"Labels": {"tier": "front"}, "Env": ["A=1", "B=2"]},
            "Mounts": [{"Source": "/s1", "Destination": "/d1"}, {"Source": "/s2", "Destination": "/d2"}],
            "Args": ["-c", "x"],
        });
        assert_eq!(r("{{index .Config.Labels \"tier\"}}", &v), "front");
        assert_eq!(r("{{index .Config.Labels \"none\"}}", &v), "");
        assert_eq!(
            r("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &v),
            "/s1:/d1 /s2:/d2 "
        );
        assert_eq!(r("{{if .State.Running}}up{{else}}down{{end}}", &v), "up");
        assert_eq!(r("{{if eq .State.ExitCode 0}}ok{{end}}", &v), "ok");
        assert_eq!(r("{{len .Mounts}} {{join .Args \",\"}}", &v), "2 -c,x");
        assert_eq!(r("{{.Name | upper}}", &v), "/WEB");
        assert_eq!(r("{{json .State.Pid}}", &v), "42");
        assert_eq!(r("{{with .State}}{{.Pid}}{{end}}", &v), "42");
        assert_eq!(
            r("{{range .Nope}}x{{else}}none{{end}}", &json!({"Nope": []})),
            "none"
        );
        assert_eq!(r("{{printf \"%s=%d\" .Name .State.Pid}}", &v), "/web=42");
        assert_eq!(r("{{index (split \"a:b\" \":\") 1}}", &v), "b");
        assert_eq!(r("a {{- \" b\" -}}  c", &v), "a bc");
        assert_eq!(
            r("{{range .Config.Env}}{{println .}}{{end}}", &v),
            "A=1\nB=2\n"
        );
        assert_eq!(
            r(
                "{{if and .State.Running (not .State.ExitCode)}}y{{end}}",
                &v
            ),
            "y"
        );
    }

    #[test]
    fn errors_name_the_template() {
        for bad in [
            "{{if .X}}no end",
            "{{end}}",
            "{{foo .X}}",
            "{{.X",
            "{{\"open}}",
            "{{(.X}}",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("template parsing error"), "{bad}: {e}");
        }
    }
}
