//! The cluster list, creating, renaming and deleting clusters.

use std::collections::HashMap;

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use capstan_api::clusters::{self, ClusterView, CreateCluster, RenameCluster};
use serde::Deserialize;

use super::{Layout, ok, overview, render, see_other, zone_mode};
use crate::{
    ConsoleState, Result,
    csrf::{CsrfForm, CsrfToken},
    format,
    forms::FieldErrors,
    session::Viewer,
};

/// A row of the cluster list.
#[derive(Debug)]
struct ClusterRow {
    id: String,
    name: String,
    state: String,
    zone_mode: &'static str,
    region: String,
    month_to_date: String,
    cap: String,
    percent: i64,
}

/// A choice of zone mode with its price.
#[derive(Debug)]
struct ZoneChoice {
    value: &'static str,
    label: &'static str,
    price: String,
    ceiling: String,
}

/// A choice of placement with what it means.
#[derive(Debug)]
struct PlacementChoice {
    value: &'static str,
    label: &'static str,
    hint: &'static str,
    default: bool,
}

#[derive(Template)]
#[template(path = "clusters.html")]
struct ClustersPage {
    layout: Layout,
    clusters: Vec<ClusterRow>,
    regions: Vec<String>,
    zones: Vec<ZoneChoice>,
    placements: Vec<PlacementChoice>,
    form: CreateForm,
    errors: FieldErrors,
}

/// The create-cluster form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    placement: String,
}

async fn page(
    state: &ConsoleState,
    viewer: &Viewer,
    csrf: &CsrfToken,
    form: CreateForm,
    errors: FieldErrors,
) -> Result<ClustersPage> {
    let views = clusters::list(&state.app, &viewer.account_id).await?;
    let costs = state.app.billing.account_cost(&viewer.account_id).await?;
    let cost_of: HashMap<&str, (i64, i64)> = costs["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["cluster_id"].as_str()?,
                (c["month_to_date_cents"].as_i64()?, c["cap_cents"].as_i64()?),
            ))
        })
        .collect();
    let rows = views
        .into_iter()
        .map(|c| {
            let (spent, cap) = cost_of
                .get(c.cluster_id.as_str())
                .copied()
                .unwrap_or((0, 0));
            ClusterRow {
                zone_mode: zone_mode(c.multizone),
                month_to_date: format::dollars(spent),
                cap: format::dollars(cap),
                percent: if cap > 0 {
                    (spent * 100 / cap).clamp(0, 100)
                } else {
                    0
                },
                id: c.cluster_id,
                name: c.name,
                state: c.state,
                region: c.region,
            }
        })
        .collect();
    let prices = &state.prices;
    Ok(ClustersPage {
        layout: Layout::new("Clusters", Some(viewer), csrf, "clusters"),
        clusters: rows,
        regions: state.app.config.regions.clone(),
        zones: vec![
            ZoneChoice {
                value: "single",
                label: "Single zone",
                price: format::per_100k(prices.single_zone_message_micros),
                ceiling: format::dollars(prices.single_zone_ceiling_micros / 10_000),
            },
            ZoneChoice {
                value: "multi",
                label: "Multi-zone (3 zones)",
                price: format::per_100k(prices.multi_zone_message_micros),
                ceiling: format::dollars(prices.multi_zone_ceiling_micros / 10_000),
            },
        ],
        placements: vec![
            PlacementChoice {
                value: clusters::SHARED,
                label: "Serverless",
                hint: "a virtual cluster on shared brokers: ready at once, nothing to size",
                default: state.app.config.default_placement == clusters::SHARED,
            },
            PlacementChoice {
                value: clusters::DEDICATED,
                label: "Dedicated brokers",
                hint: "brokers of its own, for isolation; the same prices",
                default: state.app.config.default_placement == clusters::DEDICATED,
            },
        ],
        form,
        errors,
    })
}

pub(crate) async fn list(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
) -> Result<Response> {
    ok(&page(
        &state,
        &viewer,
        &csrf,
        CreateForm::default(),
        FieldErrors::default(),
    )
    .await?)
}

pub(crate) async fn create(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Result<Response> {
    let request = CreateCluster {
        name: form.name.clone(),
        region: form.region.clone(),
        multizone: form.zone == "multi",
        placement: (!form.placement.is_empty()).then(|| form.placement.clone()),
    };
    match clusters::create(&state.app, &viewer.account_id, request).await {
        Ok(cluster) => Ok(see_other(&format!("/clusters/{}", cluster.cluster_id))),
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(
                e,
                &[
                    ("cluster name", "name"),
                    ("cluster named", "name"),
                    ("region", "region"),
                    ("placement", "placement"),
                ],
            )?;
            render(status, &page(&state, &viewer, &csrf, form, errors).await?)
        }
    }
}

/// The rename form on the cluster page.
#[derive(Debug, Deserialize)]
pub(crate) struct RenameForm {
    #[serde(default)]
    name: String,
}

pub(crate) async fn rename(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<RenameForm>,
) -> Result<Response> {
    let request = RenameCluster { name: form.name };
    match clusters::rename(&state.app, &viewer.account_id, &id, request).await {
        Ok(_) => Ok(see_other(&format!("/clusters/{id}"))),
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(e, &[("", "rename")])?;
            overview::render_page(&state, &viewer, &csrf, &id, status, errors, None).await
        }
    }
}

#[derive(Template)]
#[template(path = "delete_cluster.html")]
struct DeletePage {
    layout: Layout,
    cluster: ClusterView,
    errors: FieldErrors,
}

impl DeletePage {
    fn new(viewer: &Viewer, csrf: &CsrfToken, cluster: ClusterView, errors: FieldErrors) -> Self {
        DeletePage {
            layout: Layout::new(
                format!("Delete {}", cluster.name),
                Some(viewer),
                csrf,
                "clusters",
            ),
            cluster,
            errors,
        }
    }
}

pub(crate) async fn confirm_delete(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Result<Response> {
    let cluster = clusters::get(&state.app, &viewer.account_id, &id).await?;
    ok(&DeletePage::new(
        &viewer,
        &csrf,
        cluster,
        FieldErrors::default(),
    ))
}

/// The delete confirmation: the cluster's name typed again.
#[derive(Debug, Deserialize)]
pub(crate) struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn delete(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<Response> {
    let cluster = clusters::get(&state.app, &viewer.account_id, &id).await?;
    if form.confirm.trim() != cluster.name {
        let errors = FieldErrors::one(
            "confirm",
            format!("Type the cluster's name, {}, to confirm.", cluster.name),
        );
        return render(
            StatusCode::BAD_REQUEST,
            &DeletePage::new(&viewer, &csrf, cluster, errors),
        );
    }
    clusters::delete(&state.app, &viewer.account_id, &id).await?;
    Ok(see_other("/clusters"))
}
