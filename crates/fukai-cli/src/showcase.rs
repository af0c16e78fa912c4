//! Lines for people about what an autoencoder or video run showed after its test.

use serde_json::{Map, Value};

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The probe's accuracies or the per-frame errors, and the pictures written.
pub fn lines(shown: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Object(probe)) = shown.get("probe") {
        let labels = shown
            .get("probe_labels")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        out.push(format!(
            "\nlinear probe (logistic regression on {labels} labeled training images, frozen features; test accuracy):"
        ));
        let pixels = probe.get("pixels").map(|p| num(p, "test_accuracy"));
        for (name, what) in [
            ("pixels", "raw pixels"),
            ("latent", "latent code"),
            ("encoder", "encoder feature maps"),
        ] {
            if let Some(p) = probe.get(name) {
                let acc = num(p, "test_accuracy");
                let gain = match pixels {
                    Some(px) if name != "pixels" => {
                        format!("  ({:+.2} points over pixels)", 100.0 * (acc - px))
                    }
                    _ => String::new(),
                };
                out.push(format!(
                    "  {what:<22} {:>3} features  {:.2}%{gain}",
                    num(p, "features"),
                    100.0 * acc
                ));
            }
        }
    }
    if let Some(Value::Array(rows)) = shown.get("per_frame") {
        out.push(
            "\nper predicted frame (test clips): MSE and BCE per pixel, model vs copy-last-frame"
                .into(),
        );
        out.push(format!(
            "  {:>5}  {:>9} {:>9}  {:>9} {:>9}",
            "frame", "mse", "copy-last", "bce", "copy-last"
        ));
        for r in rows {
            out.push(format!(
                "  {:>5}  {:>9.5} {:>9.5}  {:>9.4} {:>9.4}",
                r.get("frame").and_then(Value::as_u64).unwrap_or(0),
                num(r, "mse"),
                num(r, "copy_last_mse"),
                num(r, "bce"),
                num(r, "copy_last_bce")
            ));
        }
        let all = Value::Object(shown.clone());
        out.push(format!(
            "  mean   {:>9.5} {:>9.5}  {:>9.4} {:>9.4}",
            num(&all, "mse"),
            num(&all, "copy_last_mse"),
            num(&all, "bce"),
            num(&all, "copy_last_bce"),
        ));
    }
    if let Some(Value::Array(files)) = shown.get("pictures") {
        let names: Vec<&str> = files.iter().filter_map(Value::as_str).collect();
        out.push(format!("pictures: {}", names.join(", ")));
    }
    out
}
