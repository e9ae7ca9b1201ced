//! The devices model rebuilt stream by stream (see `crate::bulk`): each
//! `device:` stream folded whole with the model's own fold, its device row
//! and property rows written once.

use domain::StoredEvent;
use domain::device::DeviceEvent;

use super::store::{PropertyRow, property_rows};
use super::{At, DeviceRecord, apply};
use crate::ProjectionError;
use crate::bulk::{Cell, Folding, Rows, StreamFold, Table, decode};
use crate::time::micros;

pub struct DevicesBulk;

const TABLES: &[Table] = &[
    Table {
        name: "devices",
        columns: &[
            "device_key",
            "app_id",
            "external_id",
            "push_token",
            "send_platform",
            "device_platform",
            "user_id",
            "has_permission",
            "token_valid",
            "random_bucket",
            "properties",
            "created_at",
            "updated_at",
            "version",
            "secret_sha256",
        ],
    },
    Table {
        name: "device_properties",
        columns: &["device_key", "app_id", "key", "kind", "s", "i", "v"],
    },
];

impl StreamFold for DevicesBulk {
    fn prefix(&self) -> &'static str {
        "device:"
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn start(&self) -> Box<dyn Folding> {
        Box::new(DevicesFolding)
    }
}

struct DevicesFolding;

impl Folding for DevicesFolding {
    fn stream(
        &mut self,
        events: &[StoredEvent],
        rows: &mut dyn Rows,
    ) -> Result<(), ProjectionError> {
        let mut device: Option<DeviceRecord> = None;
        let mut app = None;
        for event in events {
            let decoded: DeviceEvent = decode(event)?;
            let at = At {
                position: event.position,
                recorded_at: event.recorded_at(),
                stream_version: event.stream_version,
            };
            apply(&mut device, &decoded, at);
            app = Some(event.app_id.0);
        }
        let (Some(d), Some(app)) = (device, app) else {
            return Ok(());
        };
        let properties = serde_json::to_string(&d.properties).unwrap_or_else(|_| "{}".into());
        rows.row(
            0,
            &[
                Cell::Int(d.device_key),
                Cell::Uuid(app),
                Cell::Text(&d.external_id),
                Cell::Text(&d.push_token),
                Cell::Text(&d.send_platform),
                Cell::Text(&d.device_platform),
                d.user_id.as_deref().into(),
                Cell::Bool(d.has_permission),
                Cell::Bool(d.token_valid),
                Cell::Int(d.random_bucket),
                Cell::Text(&properties),
                Cell::Int(micros(d.created_at)),
                Cell::Int(micros(d.updated_at)),
                Cell::Int(d.version),
                d.secret_sha256.as_deref().into(),
            ],
        );
        let mut found: Vec<PropertyRow<'_>> = Vec::with_capacity(d.properties.len() + 4);
        property_rows(app, &d, &mut found);
        for p in &found {
            rows.row(
                1,
                &[
                    Cell::Int(p.device_key),
                    Cell::Uuid(p.app),
                    Cell::Text(p.key),
                    Cell::Text(p.kind),
                    p.s.into(),
                    p.i.map_or(Cell::Null, Cell::Int),
                    p.v.as_deref().into(),
                ],
            );
        }
        Ok(())
    }
}
