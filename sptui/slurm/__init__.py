"""Running sptui's jobs on a Slurm cluster (`--executor slurm`), through submitit.

    options   what a job asks of Slurm, from config file < job file < command line; checked like parameters
    executor  submit, reconcile (queue rows from status.json + squeue/sacct), cancel, requeue, wait
    task      what runs on the compute node (the same runner as the local worker)
    status    status.json: how a job on a node reports progress and its end (nodes never open the queue DB)
    split     a batched sweep cut into array tasks of K instances, and the slices joined back
    slurmctl  bounded calls to squeue, sacct, scontrol, scancel; Slurm's states in words
    storage   the submit-time check that compute nodes can see the artifacts folder

Importing this package needs neither submitit nor Slurm; only submitting does.
"""
