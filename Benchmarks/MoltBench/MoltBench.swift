import ArgumentParser

/// molt's benchmarks. Each subcommand measures one thing, prints a human summary on stderr and
/// one line of JSON (a `BenchResult`) on stdout; `report` turns the collected lines into
/// build/bench/results.json and a markdown table. `make bench` (scripts/bench.sh) runs them all in
/// a release build.
@main
struct MoltBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "molt-bench",
        abstract: "Benchmarks of molt's plugin ABI, loader and engine.",
        discussion: "Run in a release build (make bench). Each benchmark prints one JSON line on stdout.",
        subcommands: [LoadBench.self, AbiOpBench.self, LoadRSSBench.self, ApplyBench.self, LeaseBench.self,
                      ThroughputBench.self, SwapRSSBench.self, RedisBench.self, OperationDispatchBench.self, LoadGenCommand.self,
                      ReportCommand.self])
}
