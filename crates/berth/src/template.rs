//! `--format`: a Go template ([`crate::gotmpl`]) over a command's rows, and the `table`
//! prefix that adds a header row and aligns columns the way Docker's tabwriter does.

use anyhow::Result;
use serde_json::Value;

use crate::gotmpl::{self, Node};

/// A parsed `--format` template.
pub struct Template {
    table: bool,
    nodes: Vec<Node>,
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
        Ok(Template {
            table,
            nodes: gotmpl::parse(&body)?,
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
        // Every row ends its line, an empty one too, as Docker prints them.
        if !lines.is_empty() {
            out.push('\n');
        }
        Ok(out)
    }

    pub fn render(&self, v: &Value) -> Result<String> {
        let mut out = String::new();
        gotmpl::render(&self.nodes, v, &mut out)?;
        Ok(out)
    }

    fn header(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let name = gotmpl::header_field(p).unwrap_or("");
                    match self.headers.iter().find(|(f, _)| f == name) {
                        Some((_, h)) => out.push_str(h),
                        None => out.push_str(&header_name(name)),
                    }
                }
                _ => {}
            }
        }
        out
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
