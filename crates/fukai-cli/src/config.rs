//! TOML run configs (`--config FILE.toml`). Errors name the line, the key and the `[section]`.

use fukai::run::RunConfig;

/// Parses a TOML config.
pub fn parse(text: &str) -> Result<RunConfig, String> {
    toml::from_str::<RunConfig>(text).map_err(|e| {
        let section = e.span().and_then(|span| {
            text[..span.start.min(text.len())]
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('['))
                .map(|l| {
                    l.split(']')
                        .next()
                        .unwrap_or(l)
                        .trim_start_matches('[')
                        .trim()
                        .to_string()
                })
        });
        let msg = e.to_string();
        match section {
            Some(s) if !s.is_empty() => format!("in section [{s}]: {msg}"),
            _ => msg,
        }
    })
}
