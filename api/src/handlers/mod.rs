//! Handlers: one module per area, each turning an admitted route into a typed call to
//! the object that owns the data (or an answer the Worker gives itself).

mod aggregates;
mod projections;
mod stream;

use durable::encoding::json_response;
use durable::{ApiResult, Config};
use serde_json::json;
use worker::{Env, Request, Response};

use crate::gate::Admitted;
use crate::routes::Route;

/// Runs an admitted request.
pub async fn dispatch(
    req: Request,
    env: &Env,
    config: &Config,
    route: Route,
    admitted: Admitted,
) -> ApiResult<Response> {
    match route {
        Route::Health => Ok(json_response(&json!({ "status": "ok" }), 200)),
        Route::Aggregate {
            aggregate_type,
            aggregate_id,
            op,
        } => {
            let target = aggregates::Target::new(&aggregate_type, &aggregate_id)?;
            aggregates::handle(req, env, config, &target, op, &admitted).await
        }
        Route::Projection(route) => projections::handle(req, env, route, &admitted).await,
        Route::Stream(route) => stream::handle(req, env, config, route, &admitted).await,
        Route::PartitionAdmin { partition, action } => {
            stream::admin(env, config, &partition, action, &admitted).await
        }
    }
}
