//! The subset of Go templates that `--format` needs: `{{.Field}}`, `{{.A.B}}`, `{{json .}}`,
//! `{{json .Field}}`, `{{lower .X}}`/`{{upper .X}}`, and the `table` prefix that adds a header
//! row and aligns columns the way Docker's tabwriter does.

use anyhow::{bail, Result};
use serde_json::Value;

enum Segment {
    Text(String),
    Field {
        func: Option<Func>,
        path: Vec<String>,
    },
}

#[derive(Clone, Copy)]
enum Func {
    Json,
    Lower,
    Upper,
}

/// A parsed `--format` template.
pub struct Template {
    table: bool,
    segments: Vec<Segment>,
    headers: Vec<(String, String)>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template> {
        let (table, body) = match src.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, src),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut segments = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                segments.push(Segment::Text(rest[..start].to_string()));
            }
            let Some(end) = rest[start..].find("}}") else {
                bail!("template parsing error: unclosed action in {src:?}");
            };
            let action = rest[start + 2..start + end].trim().trim_matches('-').trim();
            segments.push(parse_action(action, src)?);
            rest = &rest[start + end + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_string()));
        }
        Ok(Template {
            table,
            segments,
            headers: Vec::new(),
        })
    }

    /// Names a column's header where the command's context decides it (`ID` is `CONTAINER ID`
    /// in `ps` but `IMAGE ID` in `images`).
    pub fn with_headers(mut self, headers: &[(&str, &str)]) -> Template {
        self.headers = headers
            .iter()
            .map(|(f, h)| (f.to_string(), h.to_string()))
            .collect();
        self
    }

    /// Renders every row; a `table` template gets a header and aligned columns.
    pub fn render_all(&self, rows: &[Value]) -> Result<String> {
        let mut lines: Vec<String> = Vec::new();
        if self.table {
            lines.push(self.header());
        }
        for row in rows {
            lines.push(self.render(row)?);
        }
        let mut out = if self.table {
            align(&lines, TABLE_MIN_WIDTH)
        } else {
            lines.join("\n")
        };
        if !out.is_empty() {
            out.push('\n');
        }
        Ok(out)
    }

    pub fn render(&self, v: &Value) -> Result<String> {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Text(t) => out.push_str(t),
                Segment::Field { func, path } => {
                    let mut cur = v;
                    for p in path {
                        cur = match cur.get(p) {
                            Some(x) => x,
                            None => bail!(
                                "template: can't evaluate field {p} (known fields: {})",
                                known(cur)
                            ),
                        };
                    }
                    out.push_str(&match func {
                        Some(Func::Json) => serde_json::to_string(cur)?,
                        Some(Func::Lower) => plain(cur).to_lowercase(),
                        Some(Func::Upper) => plain(cur).to_uppercase(),
                        None => plain(cur),
                    });
                }
            }
        }
        Ok(out)
    }

    fn header(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Text(t) => out.push_str(t),
                Segment::Field { path, .. } => {
                    let name = path.last().map(String::as_str).unwrap_or("");
                    match self.headers.iter().find(|(f, _)| f == name) {
                        Some((_, h)) => out.push_str(h),
                        None => out.push_str(&header_name(name)),
                    }
                }
            }
        }
        out
    }
}

fn parse_action(action: &str, src: &str) -> Result<Segment> {
    let (func, arg) = match action.split_once(char::is_whitespace) {
        Some((f, a)) => {
            let func = match f {
                "json" => Func::Json,
                "lower" => Func::Lower,
                "upper" => Func::Upper,
                other => bail!("template parsing error: function {other:?} not defined in {src:?}"),
            };
            (Some(func), a.trim())
        }
        None => (None, action),
    };
    if !arg.starts_with('.') {
        bail!("template parsing error: unexpected {arg:?} in {src:?}");
    }
    let path = arg[1..]
        .split('.')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Segment::Field { func, path })
}

fn known(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o.keys().cloned().collect::<Vec<_>>().join(", "),
        None => "none".into(),
    }
}

/// Go's `%v` of a JSON value: strings bare, lists as `[a b]`, objects as `map[k:v]`.
fn plain(v: &Value) -> String {
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

/// `CreatedSince` → `CREATED`, `Repository` → `REPOSITORY`, `ID` → `IMAGE ID`, as Docker heads columns.
fn header_name(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" | "CreatedAt" => "CREATED".into(),
        "CreatedBy" => "CREATED BY".into(),
        "UniqueSize" => "UNIQUE SIZE".into(),
        "SharedSize" => "SHARED SIZE".into(),
        "TotalCount" => "TOTAL".into(),
        other => {
            let mut s = String::new();
            for (i, c) in other.char_indices() {
                if i > 0 && c.is_uppercase() && !other[..i].ends_with(char::is_uppercase) {
                    s.push(' ');
                }
                s.extend(c.to_uppercase());
            }
            s
        }
    }
}

/// Docker's minimum column width for its tables (`docker top` uses 20).
pub const TABLE_MIN_WIDTH: usize = 10;

/// Aligns tab-separated cells as Docker's client does (Go's `tabwriter` with a padding of 3):
/// a column is its widest cell plus 3, and at least `min_width`; the last cell of a line is
/// not padded.
pub fn align(lines: &[String], min_width: usize) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                line.push_str(c);
                if i + 1 < r.len() {
                    let pad = (widths[i] + 3).max(min_width) - c.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_fields_and_json() {
        let t = Template::parse("{{.Repository}}:{{.Tag}}").unwrap();
        let v = json!({"Repository": "alpine", "Tag": "latest"});
        assert_eq!(t.render(&v).unwrap(), "alpine:latest");
        let t = Template::parse("{{json .Config.Env}}").unwrap();
        let v = json!({"Config": {"Env": ["A=1"]}});
        assert_eq!(t.render(&v).unwrap(), "[\"A=1\"]");
        assert!(Template::parse("{{.Nope}}")
            .unwrap()
            .render(&v)
            .unwrap_err()
            .to_string()
            .contains("Nope"));
        assert!(Template::parse("{{foo .X}}").is_err());
        assert!(Template::parse("{{.X").is_err());
    }

    #[test]
    fn table_has_header() {
        let t = Template::parse("table {{.Repository}}\t{{.ID}}").unwrap();
        let out = t
            .render_all(&[json!({"Repository": "a", "ID": "1"})])
            .unwrap();
        assert_eq!(out, "REPOSITORY   IMAGE ID\na            1\n");
        assert_eq!(
            align(&["NAME\tCPU %\tX".into(), "web\t0.00%\ty".into()], 10),
            "NAME      CPU %     X\nweb       0.00%     y"
        );
    }
}
