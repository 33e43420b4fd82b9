//! Charts: an Apache ECharts instance (built with `charming`) in a `div`, redrawn when its
//! chart changes, resized with the window, with an optional click handler. Every chart has a
//! sentence for screen readers (`role="img"`, `aria-label`) besides ECharts' own description.

use charming::{Chart, Echarts, WasmRenderer};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// A click on a data point: its series and its index in that series' data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clicked {
    pub series: usize,
    pub index: usize,
}

/// Calls `echarts_instance[name](args...)`, if it has such a method.
fn call(instance: &JsValue, name: &str, args: &js_sys::Array) -> Option<JsValue> {
    let f = js_sys::Reflect::get(instance, &JsValue::from_str(name))
        .ok()?
        .dyn_into::<js_sys::Function>()
        .ok()?;
    f.apply(instance, args).ok()
}

/// Calls `cb` on clicks on `e`'s data points; the handler lives as long as the returned closure
/// (the chart keeps it until it is disposed).
fn bind_click(e: &Echarts, cb: Callback<Clicked>) -> Closure<dyn Fn(JsValue)> {
    let handler = Closure::<dyn Fn(JsValue)>::new(move |params: JsValue| {
        let num = |k: &str| {
            js_sys::Reflect::get(&params, &JsValue::from_str(k))
                .ok()
                .and_then(|v| v.as_f64())
        };
        if let (Some(series), Some(index)) = (num("seriesIndex"), num("dataIndex")) {
            cb.run(Clicked {
                series: series as usize,
                index: index as usize,
            });
        }
    });
    call(
        e,
        "on",
        &js_sys::Array::of2(&JsValue::from_str("click"), handler.as_ref()),
    );
    handler
}

/// A chart in a `div` of the given height and the container's width.
#[component]
pub fn EChart(
    /// The element id (unique on the page).
    #[prop(into)]
    id: String,
    /// What the chart shows, in a sentence (its accessible name).
    #[prop(into)]
    label: String,
    /// Height in pixels.
    #[prop(default = 340)]
    height: u32,
    /// The chart; redrawn when it changes.
    #[prop(into)]
    chart: Signal<Chart>,
    /// Called with the data point clicked.
    #[prop(optional)]
    on_click: Option<Callback<Clicked>>,
) -> impl IntoView {
    // the instance and its click handler, dropped together when the chart goes
    type Handler = Closure<dyn Fn(JsValue)>;
    let instance = StoredValue::new_local(None::<(Echarts, Option<Handler>)>);
    let target = id.clone();
    Effect::new(move |_| {
        let c = chart.get();
        let target = target.clone();
        // drawn on the next frame, once the element is in the document and has its width
        request_animation_frame(move || {
            instance.try_update_value(|slot| match slot {
                Some((e, _)) => WasmRenderer::update(e, &c),
                None => match WasmRenderer::new_opt(None, Some(height)).render(&target, &c) {
                    Ok(e) => {
                        let handler = on_click.map(|cb| bind_click(&e, cb));
                        *slot = Some((e, handler));
                    }
                    Err(e) => leptos::logging::error!("chart {target}: {e:?}"),
                },
            });
        });
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| {
        instance.with_value(|slot| {
            if let Some((e, _)) = slot {
                call(e, "resize", &js_sys::Array::new());
            }
        })
    });
    on_cleanup(move || {
        resize.remove();
        instance.try_update_value(|slot| {
            if let Some((e, _handler)) = slot.take() {
                call(&e, "dispose", &js_sys::Array::new());
            }
        });
    });
    view! {
        <div id=id class="chart" role="img" aria-label=label
            style=format!("height:{height}px")></div>
    }
}

/// Colours of groups 0, 1, …, repeated past the palette (ECharts' default palette, so a group
/// has the same colour in every chart and card).
pub const PALETTE: [&str; 9] = [
    "#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452", "#9a60b4",
    "#ea7ccc",
];

/// The colour of group `g`.
pub fn group_colour(g: usize) -> &'static str {
    PALETTE[g % PALETTE.len()]
}
