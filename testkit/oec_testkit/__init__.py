"""Test support of oec-operator (a development package, never in the operator's wheel or image).

Modules: ``controlplane`` (a local kube-apiserver + etcd), ``processes`` (starting and stopping
child processes), ``kubectl``, ``manifests`` and ``waiting`` (helpers of every test and tool),
``simulator`` and ``operator`` (the two launched as processes),
and the logic of ``demo``, ``bench`` and ``chaos`` behind the command lines in ``tools/``.
"""
