use floe_model::*;
use stateright::{Checker, Model};

#[test]
fn probe() {
    let c = FloeModel::new(Scenario::Faults { pinned: true }).checker().target_max_depth(depth()).spawn_bfs().join();
    let p = c.discovery(floe_model::model::INV5).unwrap();
    for a in p.into_actions() { println!("{a:?}"); }
}
