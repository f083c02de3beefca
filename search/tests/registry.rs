//! The registry: every strategy round-trips through its settings JSON, the common
//! options reach the setting each strategy names, defaults survive unless set, and bad
//! settings are refused naming the strategy, the key and what is allowed.

use ponder_search::registry::{self, lookup, names, resolve, Overrides, REGISTRY};
use serde_json::{json, Value};

#[test]
fn every_strategy_round_trips_through_its_settings() {
    assert_eq!(names().len(), 17);
    for e in REGISTRY.iter() {
        let first = e.build(&json!({})).unwrap();
        assert_eq!(first.settings(), e.defaults(), "{}", e.name);
        // Change one setting, rebuild from the recorded JSON: the same strategy. (A
        // cascade's token limits are its stages'.)
        let mut changed = e.defaults();
        let tokens = changed.get("max_tokens").is_some();
        if tokens {
            changed["max_tokens"] = json!(77);
        } else {
            for stage in changed["stages"].as_array_mut().unwrap() {
                stage["settings"]["max_tokens"] = json!(77);
            }
        }
        if let Some(k) = e.n_key {
            changed[k] = json!(12);
        }
        let a = e.build(&changed).unwrap();
        let b = e.build(&a.settings()).unwrap();
        assert_eq!(a.settings(), changed, "{}", e.name);
        assert_eq!(b.settings(), a.settings(), "{}", e.name);
        assert_eq!(b.name(), a.name(), "{}", e.name);
        assert_eq!(a.needs(), b.needs(), "{}", e.name);
        assert_eq!(a.needs().max_tokens, 77, "{}", e.name);
    }
}

#[test]
fn every_setting_is_documented() {
    for e in REGISTRY.iter() {
        assert!(!e.summary().is_empty(), "{} has no summary", e.name);
        for s in e.settings() {
            assert!(
                !s.description.is_empty(),
                "{}: setting {} has no description",
                e.name,
                s.key
            );
        }
    }
    let vote = lookup("best-of-n")
        .unwrap()
        .settings()
        .into_iter()
        .find(|s| s.key == "vote")
        .unwrap();
    assert_eq!(vote.allowed, ["naive", "majority", "weighted", "borda"]);
    assert_eq!(vote.default, json!("majority"));
}

fn built(name: &str, o: &Overrides) -> Value {
    resolve(&[name.to_string()], o).unwrap()[0].settings()
}

#[test]
fn n_has_one_meaning_and_defaults_survive_unless_set() {
    let mut o = Overrides::default();
    o.common.n = Some(12);
    assert_eq!(built("best-of-n", &o)["n"], 12);
    assert_eq!(built("mcts", &o)["iterations"], 12);
    assert_eq!(built("fast-mcts", &o)["trajectories"], 12);
    assert_eq!(built("dpts", &o)["max_parallel"], 12);
    assert_eq!(built("spec-rejection", &o)["n"], 12);
    // Greedy has no N: --n alone with greedy is refused rather than ignored.
    let err = resolve(&["greedy".into()], &o).err().unwrap().to_string();
    assert_eq!(err, "greedy: --n does not apply to greedy");
    // With best-of-n in the same run it applies there and leaves greedy alone.
    let both = resolve(&["greedy".into(), "best-of-n".into()], &o).unwrap();
    assert_eq!(both[0].name(), "greedy");
    assert_eq!(both[1].name(), "best-of-12-majority");

    // MCTS's paper temperature (0.7) and ST-BoN's sampling stay unless the user sets them.
    let none = Overrides::default();
    assert_eq!(built("mcts", &none)["sampling"]["temperature"], json!(0.7));
    assert_eq!(
        built("st-bon", &none)["sampling"],
        json!({"temperature": 0.7, "top_k": 20, "top_p": 0.95, "min_p": 0.0})
    );
    let mut hot = Overrides::default();
    hot.common.temperature = Some(0.9);
    assert_eq!(built("mcts", &hot)["sampling"]["temperature"], json!(0.9));
    assert_eq!(built("st-bon", &hot)["sampling"]["top_k"], 20);
    // RSD samples too: --temperature reaches it.
    assert_eq!(built("rsd", &hot)["sampling"]["temperature"], json!(0.9));
    assert_eq!(
        built("beam", &none)["max_tokens"],
        registry::DEFAULT_MAX_TOKENS
    );
}

#[test]
fn layers_apply_in_order_config_then_common_then_set() {
    let mut o = Overrides::default();
    let config: Value = json!({
        "max_tokens": 100,
        "mcts": {"width": 3, "c_init": 2.0},
        "sampling": {"top_p": 0.9}
    });
    o.add_config(config.as_object().unwrap().clone());
    o.common.max_tokens = Some(200);
    o.add_set("mcts.width=2").unwrap();
    o.add_set("steps.unit={\"tokens\": 16}").unwrap();
    let s = resolve(&["mcts".into(), "best-of-n".into()], &o).unwrap();
    let (m, b) = (s[0].settings(), s[1].settings());
    assert_eq!(m["width"], 2, "--set beats the file");
    assert_eq!(m["c_init"], json!(2.0));
    assert_eq!(m["max_tokens"], 200, "the common option beats the file");
    assert_eq!(m["sampling"]["top_p"], json!(0.9));
    assert_eq!(m["steps"]["unit"], json!({"tokens": 16}));
    assert_eq!(b["max_tokens"], 200);
    assert_eq!(b["sampling"]["top_p"], json!(0.9));
    assert!(b.get("width").is_none(), "scoped to mcts only");
}

fn err(names: &[&str], sets: &[&str]) -> String {
    let mut o = Overrides::default();
    for s in sets {
        o.add_set(s).unwrap();
    }
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    match resolve(&names, &o) {
        Ok(_) => panic!("{names:?} {sets:?} accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_settings_name_the_strategy_the_key_and_what_is_allowed() {
    let e = err(&["mcts"], &["mcts.widht=2"]);
    assert!(
        e.starts_with("mcts: unknown setting `widht` (its settings: iterations, width,"),
        "{e}"
    );
    let e = err(&["mcts", "beam"], &["c_inti=1"]);
    assert!(e.contains("unknown setting `c_inti`"), "{e}");
    assert!(e.contains("mcts: iterations, width"), "{e}");
    let e = err(&["best-of-n"], &["vote=plurality"]);
    assert!(
        e.starts_with("best-of-n: setting `vote`: unknown vote \"plurality\""),
        "{e}"
    );
    assert!(
        e.contains("naive, majority, weighted, borda, borda:POWER"),
        "{e}"
    );
    let e = err(&["best-of-n"], &["sampling.temperature=hot"]);
    assert!(
        e.starts_with("best-of-n: setting `sampling.temperature`: invalid type"),
        "{e}"
    );
    let e = err(&["best-of-n"], &["sampling.temperature=-1"]);
    assert!(e.starts_with("best-of-n: invalid temperature"), "{e}");
    let e = err(&["beam"], &["width=3"]);
    assert!(e.contains("3 does not divide n = 8"), "{e}");
    let e = err(&["greedy"], &["mcts.width=2"]);
    assert!(
        e.contains("settings given for mcts, which this run does not use"),
        "{e}"
    );
    let mut o = Overrides::default();
    assert!(o
        .add_set("width")
        .unwrap_err()
        .to_string()
        .contains("not key=value"));
    o.common.vote = Some(ponder_search::Vote::Weighted);
    let e = resolve(&["early-exit".into()], &o)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "early-exit: --vote does not apply to early-exit");
    let e = registry::build("nope", &json!({}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("unknown strategy \"nope\" (known: greedy, best-of-n,"),
        "{e}"
    );
}

#[test]
fn needs_are_declared_not_guessed() {
    let b = |name: &str, s: Value| registry::build(name, &s).unwrap().needs();
    assert!(b("rsd", json!({})).draft_model);
    assert!(b("rsd", json!({})).scorer);
    assert!(!b("rsd", json!({"reward": "target"})).scorer);
    assert!(b("st-bon", json!({})).layer_probe);
    let fl = b("st-bon", json!({"final_layer": true}));
    assert!(fl.hidden_states && !fl.layer_probe);
    let g = b("greedy", json!({}));
    assert_eq!(
        (g.sequences, g.draft_model, g.layer_probe),
        (1, false, false)
    );
    assert_eq!(b("best-of-n", json!({"n": 5})).sequences, 5);
    // Early exit answers from its probes: a judge or PRM would be loaded for nothing.
    assert!(!b("early-exit", json!({})).scorer);
}
