//! Numbers as people read them: metrics to three decimals, signed gains, durations, dates.

/// A metric to three decimals.
pub fn m3(x: f64) -> String {
    format!("{x:.3}")
}

/// A difference with its sign, to three decimals.
pub fn signed(x: f64) -> String {
    format!("{x:+.3}")
}

/// Seconds as `12.3 s`, `4 min 05 s` or `1 h 02 min`.
pub fn duration(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// A dataset timestamp as a date: Unix seconds (1973 to 5138) as `YYYY-MM-DD`, any other
/// number as itself (the plain format takes any number as a time).
pub fn date(t: f64) -> String {
    if (1e8..1e11).contains(&t) {
        let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(t * 1000.0));
        String::from(d.to_iso_string()).chars().take(10).collect()
    } else {
        format!("t = {t}")
    }
}
