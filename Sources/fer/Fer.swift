import ArgumentParser
import FERCore

@main
struct Fer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fer",
        abstract: "FER Cluster: train facial-emotion CNNs on FER-2013, single-process or across MPI ranks.",
        discussion: """
        The same binary runs as one process or as the ranks of an mpirun job (across nodes with a \
        hostfile); set OMP_NUM_THREADS so that ranks x threads <= cores. The dataset is --data, else \
        $FER_DATA, else ../shared/data/fer2013.zip.

        Example, from the data to a scored model:
          fer data --out runs/data
          fer train --config configs/paper.yaml --run runs/paper
          fer eval --checkpoint runs/paper/checkpoints/best.ckpt --tta
          fer predict --checkpoint runs/paper/checkpoints/best.ckpt face.jpg
        """,
        version: ferVersion,
        subcommands: [DataCommand.self, InfoCommand.self, TrainCommand.self, DistillCommand.self, EvalCommand.self,
                      PredictCommand.self, ExportCommand.self, SweepCommand.self, TimeToAccuracyCommand.self, BenchCommand.self, ScalingCommand.self, SelftestCommand.self])
}
