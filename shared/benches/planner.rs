//! Criterion benchmarks of the planner's hot paths: each strategy on generated small, medium
//! and large instances, and the lower bound on small and medium
//! (`cargo bench -p grd-shared --bench planner`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use grd::bench::instance::{generate, Size, Spec};
use grd::domain::plan::{
    flow::{flow_bound_of, lagrangian_bound_of},
    strategy_by_name, STRATEGY_NAMES,
};
use std::hint::black_box;

fn instance(size: Size) -> grd::domain::plan::PlanInput {
    generate(&Spec {
        size,
        load: 0.6,
        swing: 0.3,
        seed: 1,
    })
}

fn strategies(c: &mut Criterion) {
    let mut group = c.benchmark_group("strategy");
    group.sample_size(10);
    for (label, size) in [
        ("small", Size::Small),
        ("medium", Size::Medium),
        ("large", Size::Large),
    ] {
        let input = instance(size);
        for name in STRATEGY_NAMES {
            let Some(s) = strategy_by_name(name) else {
                continue;
            };
            group.bench_with_input(BenchmarkId::new(name, label), &input, |b, input| {
                b.iter(|| black_box(s.plan(black_box(input))))
            });
        }
    }
    group.finish();
}

fn bounds(c: &mut Criterion) {
    let mut group = c.benchmark_group("bound");
    group.sample_size(10);
    let small = instance(Size::Small);
    group.bench_function("flow/small", |b| {
        b.iter(|| black_box(flow_bound_of(black_box(&small), |_| true)))
    });
    for (label, size) in [("small", Size::Small), ("medium", Size::Medium)] {
        let input = instance(size);
        group.bench_with_input(BenchmarkId::new("lagrangian", label), &input, |b, input| {
            b.iter(|| black_box(lagrangian_bound_of(black_box(input), |_| true, 300)))
        });
    }
    group.finish();
}

criterion_group!(benches, strategies, bounds);
criterion_main!(benches);
