"""The lab's DNS resolver: answers the lab's own zone, refuses everything else."""
