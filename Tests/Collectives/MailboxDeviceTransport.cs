using System.Collections.Concurrent;
using Elastic.Training.Collectives;
using static TorchSharp.torch;

namespace Elastic.Tests.Collectives;

/// <summary>
/// A device transport as NCCL behaves to the communicator, on CPU: each send is a copy posted to the peer's mailbox, each
/// receive waits for its peer's next one (within the timeout) and checks that the sizes agree. It lets the communicator's
/// routing over a device transport run where no GPU is.
/// </summary>
public sealed class MailboxDeviceTransport(MailboxDeviceTransport.Mailboxes boxes, int rank) : IDeviceTransport
{
    /// <summary>One group's mailboxes, by sender and receiver.</summary>
    public sealed class Mailboxes
    {
        private readonly ConcurrentDictionary<(int From, int To), BlockingCollection<Tensor>> _boxes = new();

        public BlockingCollection<Tensor> Between(int from, int to) => _boxes.GetOrAdd((from, to), _ => []);

        /// <summary>Tensors moved so far, all ranks together.</summary>
        public int Moved;
    }

    public string Name => "mailboxes";

    public bool Carries(Tensor tensor) => tensor.device_type == TorchSharp.DeviceType.CPU;

    public void Exchange(IReadOnlyList<(int Peer, Tensor Tensor)> sends, IReadOnlyList<(int Peer, Tensor Into)> receives, TimeSpan timeout)
    {
        foreach (var (peer, tensor) in sends)
        {
            using var scope = NewDisposeScope();
            boxes.Between(rank, peer).Add(tensor.clone().DetachFromDisposeScope());
            Interlocked.Increment(ref boxes.Moved);
        }
        foreach (var (peer, into) in receives)
        {
            if (!boxes.Between(peer, rank).TryTake(out var sent, timeout))
                throw new CollectiveException($"rank {rank}: nothing from rank {peer} within {timeout.TotalSeconds} s");
            using (sent)
            {
                if (sent.NumberOfElements != into.NumberOfElements || sent.dtype != into.dtype)
                    throw new CollectiveException($"rank {rank}: rank {peer} sent {sent.NumberOfElements} {sent.dtype} into {into.NumberOfElements} {into.dtype}");
                into.view(-1).copy_(sent.view(-1));
            }
        }
    }

    public bool Disposed { get; private set; }

    public void Dispose() => Disposed = true;
}
