//! The request → job mapping, the choices of a reply and the queue, on the mock
//! backend (no model). The server end to end is `tests/serve.rs`.

use super::openai::{ChatRequest, Common, CompletionRequest};
use super::plan::{plan, Input, Job};
use super::*;
use ponder_engine::{Engine, Finish};
use ponder_search::{Candidate, Solution};
use serde_json::{json, Value};

fn state() -> Arc<State> {
    let engine = Engine::mock(Default::default()).unwrap();
    let cfg = Config {
        model_id: "tiny".into(),
        api_key: None,
        limits: Limits {
            max_n: 8,
            max_tokens: 100,
            max_sequences: 8,
            timeout: Duration::from_secs(60),
        },
        parallel: 2,
        queue: 1,
        max_body_bytes: 1 << 16,
        strategies: ponder_search::registry::names(),
        shutdown_grace: Duration::from_secs(1),
    };
    let logprob = NamedScorer {
        name: "logprob".into(),
        scorer: Arc::new(ponder_scorers::MeanLogprob),
    };
    State::new(cfg, Cx::new(engine), vec![logprob])
}

fn chat(body: Value) -> Result<Job, error::ApiError> {
    let r: ChatRequest = serde_json::from_value(body).unwrap();
    plan(&state(), Input::Chat(r.messages), &r.common)
}

fn q(extra: Value) -> Value {
    let mut v = json!({"messages": [{"role": "user", "content": "What is 2 + 2?"}]});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn the_plain_model_is_greedy_or_plain_sampling() {
    let j = chat(q(json!({"model": "tiny", "max_tokens": 7}))).unwrap();
    assert_eq!(j.entry, "greedy");
    assert_eq!(j.strategy.settings()["max_tokens"], 7);
    // Without max_tokens, a default longer than the server allows (320 > 100) is cut to it.
    let j = chat(q(json!({}))).unwrap();
    assert_eq!(j.strategy.settings()["max_tokens"], 100);
    // Greedy has no temperature: 0 is taken as asking for it, and ignored.
    let j = chat(q(json!({"temperature": 0.0}))).unwrap();
    assert_eq!(j.entry, "greedy");
    let j = chat(q(
        json!({"model": "tiny", "temperature": 0.5, "n": 3, "top_p": 0.9}),
    ))
    .unwrap();
    assert_eq!(j.entry, "best-of-n");
    let s = j.strategy.settings();
    assert_eq!(
        (s["n"].clone(), s["sampling"]["temperature"].clone()),
        (json!(3), json!(0.5))
    );
    assert_eq!(s["sampling"]["top_p"], 0.9);
    assert_eq!(j.choices, 3);
}

#[test]
fn strategies_take_openai_fields_where_they_have_them_and_the_ponder_object_strictly() {
    let j = chat(q(json!({"model": "best-of-n:x", "stop": "\n\n", "seed": 9,
        "ponder": {"n": 5, "set": {"vote": "weighted", "sampling.top_k": 3}}})))
    .unwrap();
    let s = j.strategy.settings();
    assert_eq!(j.entry, "best-of-n");
    assert_eq!(j.model, "best-of-n:x");
    assert_eq!(
        (s["n"].clone(), s["vote"].clone()),
        (json!(5), json!("weighted"))
    );
    assert_eq!(s["sampling"]["top_k"], 3);
    assert_eq!(s["stop"], json!(["\n\n"]));
    assert_eq!(j.cx.seed, 9);
    // n choices raise a smaller N.
    let j = chat(q(json!({"model": "best-of-n", "n": 8, "ponder": {}}))).unwrap();
    assert_eq!(j.strategy.settings()["n"], 8);
    // ponder.strategy wins over the model field.
    let j = chat(q(
        json!({"model": "whatever", "ponder": {"strategy": "beam"}}),
    ))
    .unwrap();
    assert_eq!(j.entry, "beam");
    let e = chat(q(json!({"model": "beam", "ponder": {"set": {"nope": 1}}})))
        .err()
        .unwrap();
    assert!(
        e.message.contains("beam") && e.message.contains("unknown setting `nope`"),
        "{e:?}"
    );
    // An unknown key in the ponder object is refused (at the top level it is ignored).
    let e = serde_json::from_value::<ChatRequest>(q(json!({"ponder": {"bogus": 1}})));
    assert!(e.unwrap_err().to_string().contains("bogus"));
    assert!(chat(q(json!({"bogus": 1}))).is_ok());
}

#[test]
fn limits_and_bad_messages_are_400s_naming_the_field() {
    let cases = [
        (q(json!({"n": 9})), "n"),
        (q(json!({"n": 0})), "n"),
        (q(json!({"max_tokens": 101})), "max_tokens"),
        (q(json!({"max_completion_tokens": 0})), "max_tokens"),
        (
            q(json!({"model": "best-of-n", "ponder": {"n": 9}})),
            "ponder.n",
        ),
        (q(json!({"ponder": {"timeout": 61}})), "ponder.timeout"),
        (q(json!({"model": "nope"})), "model"),
        (
            q(json!({"model": "mcts", "ponder": {"set": {"max_tokens": 500}}})),
            "max_tokens",
        ),
        (q(json!({"ponder": {"scorer": "prm"}})), "ponder.scorer"),
        (json!({"messages": []}), "messages"),
        (
            json!({"messages": [{"role": "assistant", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            "messages[0].content",
        ),
    ];
    for (body, param) in cases {
        let e = chat(body.clone())
            .err()
            .unwrap_or_else(|| panic!("no error: {body}"));
        assert_eq!(e.status.as_u16(), 400, "{body}: {e:?}");
        assert_eq!(e.param.as_deref(), Some(param), "{body}: {e:?}");
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
    }
}

#[test]
fn chat_turns_become_system_prompt_history_and_question() {
    let j = chat(json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Remember 7."}]},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "Which number?"}]}))
    .unwrap();
    assert_eq!(j.cx.system.as_deref(), Some("Be brief."));
    assert_eq!(j.problem.question, "Which number?");
    let h: Vec<(&str, &str)> = j
        .problem
        .history
        .iter()
        .map(|m| (m.role.as_str(), m.content.as_str()))
        .collect();
    assert_eq!(h, [("user", "Remember 7."), ("assistant", "OK.")]);
    // Completions: the text as it is.
    let r: CompletionRequest =
        serde_json::from_value(json!({"prompt": ["Once"], "max_tokens": 3})).unwrap();
    let j = plan(&state(), Input::Text(r.prompt), &r.common).unwrap();
    assert_eq!(
        (j.problem.question.as_str(), j.cx.system.clone()),
        ("Once", None)
    );
    assert_eq!(j.cx.format, ponder_engine::PromptFormat::Raw);
    let e = plan(&state(), Input::Text(json!(" ")), &Common::default())
        .err()
        .unwrap();
    assert_eq!(e.param.as_deref(), Some("prompt"));
}

fn cand(text: &str, score: f64, finish: Option<Finish>) -> Candidate {
    Candidate {
        text: text.into(),
        answer: None,
        score: Some(score),
        tokens: 3,
        finish,
        error: None,
        signals: Default::default(),
    }
}

#[test]
fn choices_are_the_chosen_then_the_best_distinct_ones() {
    let sol = Solution::new(
        "best-of-4".into(),
        vec![
            cand("a", 0.9, Some(Finish::Eog)),
            cand("b", 0.1, Some(Finish::MaxTokens)),
            cand("a ", 0.8, Some(Finish::Eog)),
            cand("c", 0.5, Some(Finish::Stop("\n".into()))),
        ],
        Some(3),
        Default::default(),
    );
    let c = reply::choices(&sol, 3);
    let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["c", "a", "b"]);
    let reasons: Vec<_> = c.iter().map(|c| c.finish).collect();
    use openai::FinishReason::*;
    assert_eq!(reasons, [Stop, Stop, Length]);
    assert_eq!(
        reply::choices(&sol, 10).len(),
        3,
        "the repeated text is left out"
    );
    let none = Solution::new("x".into(), vec![], None, Default::default());
    assert_eq!(reply::choices(&none, 2)[0].finish, Length);
}

#[tokio::test(flavor = "current_thread")]
async fn the_queue_refuses_beyond_parallel_plus_queue_with_retry_after() {
    let q = queue::Queue::new(1, 1);
    let a = q.admit().unwrap();
    let b = q.admit().unwrap();
    let e = q.admit().unwrap_err();
    assert_eq!((e.status.as_u16(), e.retry_after), (429, Some(1)));
    let slot = a.slot().await;
    assert_eq!((q.solving(), q.waiting()), (1, 0));
    drop(slot);
    let _s = b.slot().await;
    assert!(q.admit().is_ok(), "a place freed");
}

#[test]
fn a_stop_before_any_answer_is_a_timeout_or_a_cancel_not_a_server_fault() {
    use crate::serve::error::ApiError;
    use ponder_engine::EngineError;
    use ponder_search::SearchError;
    let late: ApiError = SearchError::Engine(EngineError::DeadlinePassed).into();
    assert_eq!(late.status.as_u16(), 408);
    assert!(
        late.message.contains("no answer existed yet"),
        "{}",
        late.message
    );
    // A PRM scorer stopped by the problem's cancel flag, inside a search step.
    let scorer =
        ponder_scorers::ScoreError::engine("prm:x", "reading a step", EngineError::Cancelled);
    let cancelled: ApiError = SearchError::Scoring {
        step: 2,
        branches: vec![1],
        source: Box::new(scorer),
    }
    .into();
    assert_eq!(cancelled.status.as_u16(), 503);
    assert_eq!(cancelled.body()["error"]["code"], "cancelled");
}
