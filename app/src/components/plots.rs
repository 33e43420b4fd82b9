//! What the charts show, as `charming` charts: the group map, per-group quality with the
//! group's adapter against the global model, learning curves, and runs side by side. Axes,
//! legends and tooltips are labelled in words.

use charming::Chart;
use charming::component::{Aria, Axis, Grid, Legend, Title};
use charming::datatype::DataPointItem;
use charming::element::{
    AxisType, ItemStyle, LineStyle, LineStyleType, NameLocation, Tooltip, Trigger,
};
use charming::series::{Bar, Line, Scatter};
use shared::api::{EpochPoint, GroupCard, MapBody, RunDetail, RunSummary};

use super::chart::group_colour;

fn axis(kind: AxisType, name: &str) -> Axis {
    Axis::new()
        .type_(kind)
        .name(name)
        .name_location(NameLocation::Middle)
        .name_gap(32)
}

fn base(title: &str) -> Chart {
    Chart::new()
        .title(Title::new().text(title).left("center"))
        .aria(Aria::new().enabled(true))
        .legend(Legend::new().bottom(0))
        .grid(Grid::new().left(64).right(64).top(48).bottom(72))
}

/// A map point's label: the user and their top categories (shown on hover).
pub fn point_label(user: &str, top: &[String]) -> String {
    if top.is_empty() {
        format!("User {user}")
    } else {
        format!("User {user} · {}", top.join(", "))
    }
}

/// Every user as a point, one series (and colour) per group; series `g` is group `g`, its data
/// in the order of `points_of(map, g)`.
pub fn group_map(map: &MapBody, groups: usize) -> Chart {
    let axis_name = |i: usize| match (map.method.as_str(), map.explained.get(i)) {
        ("pca", Some(e)) => format!(
            "Principal component {} ({:.0}% of variance)",
            i + 1,
            e * 100.0
        ),
        ("pca", None) => format!("Principal component {}", i + 1),
        _ => format!("t-SNE dimension {}", i + 1),
    };
    let mut chart = base("Users by their grouping representation")
        .tooltip(
            Tooltip::new()
                .trigger(Trigger::Item)
                .formatter("{a}<br/>{b}"),
        )
        .x_axis(axis(AxisType::Value, &axis_name(0)).scale(true))
        .y_axis(axis(AxisType::Value, &axis_name(1)).scale(true));
    for g in 0..groups {
        let data: Vec<DataPointItem> = points_of(map, g)
            .map(|p| {
                DataPointItem::new(vec![p.x as f64, p.y as f64]).name(point_label(&p.user, &p.top))
            })
            .collect();
        chart = chart.series(
            Scatter::new()
                .name(format!("Group {g}"))
                .symbol_size(7)
                .item_style(ItemStyle::new().color(group_colour(g)).opacity(0.8))
                .data(data),
        );
    }
    chart
}

/// Group `g`'s points, in map order.
pub fn points_of(map: &MapBody, g: usize) -> impl Iterator<Item = &shared::api::MapPoint> {
    map.points.iter().filter(move |p| p.group == g)
}

/// Each group's test NDCG@20 with its own adapter and, for PerPEFT, under the global model.
pub fn group_bars(cards: &[GroupCard]) -> Chart {
    let names: Vec<String> = cards.iter().map(|c| format!("Group {}", c.group)).collect();
    let own: Vec<f64> = cards.iter().map(|c| c.own.test.ndcg20).collect();
    let mut chart = base("Test NDCG@20 of each group's users")
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .x_axis(axis(AxisType::Category, "User group").data(names))
        .y_axis(axis(AxisType::Value, "Test NDCG@20").name_gap(48))
        .series(Bar::new().name("Their group's adapter").data(own));
    if cards.iter().all(|c| c.global.is_some()) {
        let global: Vec<f64> = cards
            .iter()
            .map(|c| c.global.map(|g| g.test.ndcg20).unwrap_or_default())
            .collect();
        chart = chart.series(Bar::new().name("Global model (stage 1)").data(global));
    }
    chart
}

/// Training loss (left axis) and validation NDCG@20 and HR@20 (right axis) per epoch.
pub fn curves(points: &[EpochPoint], title: &str) -> Chart {
    let epochs: Vec<String> = points.iter().map(|p| p.epoch.to_string()).collect();
    base(title)
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .x_axis(axis(AxisType::Category, "Epoch").data(epochs))
        .y_axis(
            axis(AxisType::Value, "Training loss")
                .name_gap(48)
                .scale(true),
        )
        .y_axis(axis(AxisType::Value, "Validation metric").name_gap(48))
        .series(
            Line::new()
                .name("Training loss")
                .data(points.iter().map(|p| p.loss).collect::<Vec<f64>>()),
        )
        .series(
            Line::new()
                .name("Validation NDCG@20")
                .y_axis_index(1)
                .data(points.iter().map(|p| p.valid.ndcg20).collect::<Vec<f64>>()),
        )
        .series(
            Line::new()
                .name("Validation HR@20")
                .y_axis_index(1)
                .line_style(LineStyle::new().type_(LineStyleType::Dashed))
                .data(points.iter().map(|p| p.valid.hr20).collect::<Vec<f64>>()),
        )
}

/// Test HR@20 and NDCG@20 (and validation NDCG@20) of runs side by side.
pub fn run_bars(runs: &[RunSummary]) -> Chart {
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    let get = |f: fn(&RunSummary) -> Option<f64>| {
        runs.iter()
            .map(|r| f(r).unwrap_or_default())
            .collect::<Vec<f64>>()
    };
    base("Runs at their best validation epoch")
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .x_axis(axis(AxisType::Category, "Run").data(names))
        .y_axis(axis(AxisType::Value, "Metric").name_gap(48))
        .series(
            Bar::new()
                .name("Test HR@20")
                .data(get(|r| r.test.map(|m| m.hr20))),
        )
        .series(
            Bar::new()
                .name("Test NDCG@20")
                .data(get(|r| r.test.map(|m| m.ndcg20))),
        )
        .series(
            Bar::new()
                .name("Validation NDCG@20")
                .data(get(|r| r.valid.map(|m| m.ndcg20))),
        )
}

/// Validation NDCG@20 per epoch of several runs.
pub fn run_curves(runs: &[RunDetail]) -> Chart {
    let longest = runs.iter().map(|r| r.curve.len()).max().unwrap_or(0);
    let epochs: Vec<String> = (1..=longest).map(|e| e.to_string()).collect();
    let mut chart = base("Validation NDCG@20 per epoch")
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .x_axis(axis(AxisType::Category, "Epoch (of each run's evaluated stage)").data(epochs))
        .y_axis(axis(AxisType::Value, "Validation NDCG@20").name_gap(48));
    for r in runs {
        chart = chart.series(
            Line::new()
                .name(r.summary.name.clone())
                .data(r.curve.iter().map(|p| p.valid.ndcg20).collect::<Vec<f64>>()),
        );
    }
    chart
}
