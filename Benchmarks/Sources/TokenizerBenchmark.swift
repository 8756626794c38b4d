import Foundation
import Tokenizers

/// Tokenizer encode throughput and load time, beside HF tokenizers' figures on the same files.
///
/// Files come from `Benchmarks/peers/tokenizers_peer.py`, which writes into `/tmp/swift-finetune-bench/`:
/// `corpus.txt` (≥ 10 MB mixed text), `bpe50k/tokenizer.json` (50k-vocab byte-level BPE, ~49.7k merges) and
/// `tokenizers_peer.json` (its MB/s, load ms, token count and id checksum). When the peer has not run, the
/// corpus is generated here and the shipped small `Tokenizers/gpt2` is used, and the output says so.
/// Measurement: one thread, line by line, median of 3 passes; load is the median of 3 loads.
public func runTokenizerBenchmark(corpusPath: String? = nil, tokenizerDir: String? = nil,
                                  cacheDir: String = "/tmp/swift-finetune-bench") throws {
    let fm = FileManager.default
    let cachedCorpus = cacheDir + "/corpus.txt"
    let cachedTokenizer = cacheDir + "/bpe50k"
    let peerPath = cacheDir + "/tokenizers_peer.json"

    var lines: [String]
    var corpusName: String
    if let path = corpusPath ?? (fm.fileExists(atPath: cachedCorpus) ? cachedCorpus : nil) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TokenizerBenchmarkError.unreadable(path)
        }
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        corpusName = path
    } else {
        lines = generatedCorpus(minimumBytes: 10 * 1024 * 1024)
        corpusName = "generated in Swift (peer corpus absent)"
    }
    let dir: String
    if let d = tokenizerDir ?? (fm.fileExists(atPath: cachedTokenizer + "/tokenizer.json") ? cachedTokenizer : nil) {
        dir = d
    } else {
        dir = "Tokenizers/gpt2"
        print("tokenizer benchmark: no 50k BPE in \(cachedTokenizer) (run Benchmarks/peers/tokenizers_peer.py); using the small shipped \(dir), figures not comparable")
    }

    var loads: [Double] = []
    var tokenizer: Tokenizer? = nil
    for _ in 0..<3 {
        let start = ContinuousClock.now
        tokenizer = try Tokenizer.load(directory: dir)
        loads.append(seconds(ContinuousClock.now - start))
    }
    let tok = tokenizer!
    let bytes = lines.reduce(0) { $0 + $1.utf8.count }
    var runs: [Double] = []
    var tokens = 0
    var checksum = 0
    for pass in 0..<3 {
        let start = ContinuousClock.now
        var all: [[Int]] = []
        all.reserveCapacity(lines.count)
        for line in lines { all.append(try tok.encode(line, addSpecialTokens: false)) }
        runs.append(seconds(ContinuousClock.now - start))
        if pass == 0 {
            for ids in all {
                tokens += ids.count
                for id in ids { checksum = (checksum * 31 + id) % 1_000_000_007 }
            }
        }
    }
    let mbps = Double(bytes) / 1e6 / median(runs)
    let loadMs = median(loads) * 1000
    print("tokenizer benchmark: corpus \(corpusName), \(lines.count) lines, \(bytes) bytes; tokenizer \(dir) (vocab \(tok.vocabSize))")
    print(String(format: "  swift:      encode %.2f MB/s (median of 3: %@ s), load %.1f ms, %d tokens, checksum %d",
                 mbps, runs.map { String(format: "%.2f", $0) }.joined(separator: "/"), loadMs, tokens, checksum))
    if let data = fm.contents(atPath: peerPath),
       let peer = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
       let peerMBps = peer["encode_mb_per_s"] as? Double, let peerLoad = peer["load_ms"] as? Double {
        let peerTokens = peer["tokens"] as? Int ?? -1
        let peerChecksum = peer["id_checksum"] as? Int ?? -1
        print(String(format: "  hf %@: encode %.2f MB/s, load %.1f ms, %d tokens, checksum %d",
                     (peer["tokenizers_version"] as? String ?? "?"), peerMBps, peerLoad, peerTokens, peerChecksum))
        let sameFiles = (peer["corpus"] as? String) == corpusName && (peer["tokenizer"] as? String) == dir
        if sameFiles {
            print(String(format: "  ratio:      %.2fx HF encode speed, %.2fx HF load time; ids %@", mbps / peerMBps, loadMs / peerLoad,
                         tokens == peerTokens && checksum == peerChecksum ? "identical (count and checksum)" : "DIFFER"))
        } else {
            print("  (peer measured other files; no ratio)")
        }
    } else {
        print("  hf: peer not run (python3 Benchmarks/peers/tokenizers_peer.py writes \(peerPath))")
    }
}

public enum TokenizerBenchmarkError: Error, CustomStringConvertible {
    case unreadable(String)
    public var description: String {
        switch self {
        case .unreadable(let p): return "\(p): cannot read the benchmark corpus as UTF-8"
        }
    }
}

private func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

private func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

/// A deterministic mix of pseudo-words, Cyrillic, CJK, numbers, emoji and code (same spirit as the peer's
/// corpus, not byte-identical: the peer's file is used whenever it exists).
private func generatedCorpus(minimumBytes: Int) -> [String] {
    var state: UInt64 = 20240501
    func next(_ n: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(n))
    }
    let consonants = Array("bcdfghjklmnprstvwz"), vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
    let lexicon: [String] = (0..<20000).map { _ in
        (0..<(1 + next(4))).map { _ in String(consonants[next(consonants.count)]) + vowels[next(vowels.count)] }.joined()
    }
    let cyrillic = Array("абвгдежзийклмнопрстуфхцчшщыэюя")
    let emoji = ["😀", "👍🏽", "🚀", "👨‍👩‍👧", "❤️"]
    var lines: [String] = []
    var size = 0
    while size < minimumBytes {
        let kind = next(100)
        var line: String
        if kind < 70 {
            // Squaring a uniform draw skews towards frequent words, like natural text.
            line = (0..<(5 + next(25))).map { _ in lexicon[next(141) * next(141)] }.joined(separator: " ") + ". "
            if next(3) == 0 { line += String(next(1_000_000_000)) }
            if next(20) == 0 { line += " " + emoji[next(emoji.count)] }
        } else if kind < 82 {
            line = (0..<(4 + next(16))).map { _ in String((0..<(2 + next(8))).map { _ in cyrillic[next(cyrillic.count)] }) }.joined(separator: " ")
        } else if kind < 90 {
            line = String((0..<(8 + next(32))).map { _ in Character(Unicode.Scalar(UInt32(0x4E00 + next(2500) * 7))!) }) + "。"
        } else {
            let w = lexicon[next(3000)]
            line = "def \(w)(x, y=None):    return x + \(next(99999))\t# \(w)"
        }
        lines.append(line)
        size += line.utf8.count + 1
    }
    return lines
}
