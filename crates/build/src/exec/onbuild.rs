//! `ONBUILD` triggers: instructions a base image asks every build that uses it to run first.

use serde_json::Value;

use crate::{Dockerfile, ParseError};

/// The triggers recorded in an image config (`config.OnBuild`), in order.
pub fn triggers(config: &Value) -> Vec<String> {
    config["config"]["OnBuild"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `df` with `triggers` parsed and placed before the instructions of stage `index`, as
/// Docker runs them right after `FROM`. They are shown as `ONBUILD …` at the `FROM` line.
pub fn prepend(
    df: &Dockerfile,
    index: usize,
    triggers: &[String],
) -> Result<Dockerfile, ParseError> {
    let stage = &df.stages[index];
    let mut parsed = Vec::new();
    for t in triggers {
        let err = |message: String| ParseError {
            file: df.file.clone(),
            line: stage.pos.line,
            col: stage.pos.col,
            message: format!(
                "ONBUILD trigger {t:?} of base image {}: {message}",
                stage.base
            ),
            source_line: format!("ONBUILD {t}"),
        };
        if t.contains('\n') {
            return Err(err("a trigger must be one line".into()));
        }
        let one = crate::parse_with_args(&format!("FROM scratch\n{t}\n"), &df.file, &df.build_args)
            .map_err(|e| err(e.message))?;
        for mut l in one.stages.into_iter().flat_map(|s| s.instructions) {
            l.pos = stage.pos;
            l.source = format!("ONBUILD {t}");
            l.text = format!("ONBUILD {t}");
            parsed.push(l);
        }
    }
    let mut out = df.clone();
    let own = std::mem::take(&mut out.stages[index].instructions);
    out.stages[index].instructions = parsed.into_iter().chain(own).collect();
    Ok(out)
}

/// The text a step records in the history: the instruction with its keyword in capitals, as
/// Docker writes it; a trigger as its own instruction, without the `ONBUILD` it is logged with.
pub fn history_text(ins: &crate::Instruction, line: &str) -> String {
    let line = match ins {
        crate::Instruction::Onbuild(_) => line,
        _ => line.strip_prefix("ONBUILD ").unwrap_or(line),
    };
    match line.split_once(char::is_whitespace) {
        Some((keyword, rest)) => format!("{} {rest}", keyword.to_ascii_uppercase()),
        None => line.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_come_first_at_the_from_line() {
        let df = crate::parse("FROM base\nRUN own\n", "Dockerfile").unwrap();
        let t = vec!["RUN echo hi".to_string(), "ENV A=1".to_string()];
        let out = prepend(&df, 0, &t).unwrap();
        let ins = &out.stages[0].instructions;
        assert_eq!(ins.len(), 3);
        assert_eq!(ins[0].source, "ONBUILD RUN echo hi");
        assert_eq!(ins[1].instruction.keyword(), "ENV");
        assert_eq!(ins[0].pos, df.stages[0].pos);
        assert_eq!(ins[2].source, "RUN own");
        let e = prepend(&df, 0, &["FROB x".to_string()]).unwrap_err();
        assert!(
            e.to_string().starts_with("Dockerfile:1:1: ONBUILD trigger"),
            "{e}"
        );
        let cfg = serde_json::json!({"config": {"OnBuild": ["RUN a", "RUN b"]}});
        assert_eq!(triggers(&cfg), ["RUN a", "RUN b"]);
    }
}
